"""Configuration: $XDG_CONFIG_HOME/whisperd/config.toml, overridden by command-line options.

One path for every program and section: ``read_toml`` reads and checks the file (an
unknown section, a missing ``--config`` file, invalid UTF-8 or TOML are refused),
``load_section`` builds a section's dataclass from it (unknown keys, wrong types and
non-finite numbers refused, then the section's own ``validate``), ``apply_overrides``
lays command-line values over it and checks again, and ``socket_path`` finds the
daemon's socket by one rule. Every key is documented with its default in
docs/configuration.md. A bad value is refused at start with a ``ConfigError`` that names
the key (``daemon.idle_timeout``) or the file; programs print it on one line, exit 2.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from whisperd.protocol import (
    DEFAULT_MAX_AUDIO_BYTES,
    MAX_AUDIO_FRAME,
    MAX_VOCABULARY_ENTRIES,
    MAX_VOCABULARY_ENTRY_CHARS,
    ProtocolError,
    check_vocabulary,
)
from whisperd.text.commands import DEFAULT_LITERAL_AFTER, Command
from whisperd.text.hook import Hook
from whisperd.text.replacements import RuleError
from whisperd.text.rules import TextRules, replacement_of

SECTIONS = ("client", "daemon", "keys", "text", "http", "wyoming")
"""The sections config.toml may have (keys: docs/keys.md; text: docs/text.md; http:
docs/serving.md; wyoming: docs/wyoming.md; the others: docs/configuration.md)."""

MIN_ACTIVATED_IDLE_TIMEOUT = 5.0
"""The shortest idle timeout of a socket-activated daemon (docs/configuration.md): each
start then lasts at least 5 s, so idle exits alone can never make the five starts in
10 s that trip systemd's default start limit and switch the socket off."""


class ConfigError(Exception):
    """A configuration value that cannot be used; ``key`` names it as ``section.key``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"configuration error in {key}: {message}")
        self.key = key
        self.message = message


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "whisperd" / "config.toml"


def read_toml(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The whole configuration file as a dict, its sections checked.

    Without ``path`` the user's file is read and may be absent ({}); a ``path`` given
    (``--config``) must be a readable file.
    """
    target = Path(path) if path is not None else config_path()
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        if path is None:
            return {}
        raise ConfigError(str(target), "no such file") from None
    except IsADirectoryError:
        raise ConfigError(str(target), "is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(str(target), f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(target), f"not valid UTF-8 (byte {exc.start}): TOML files are UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(target), f"not valid TOML: {exc}") from None
    for section in raw:
        if section not in SECTIONS:
            raise ConfigError(
                f"{target} [{section}]", f"unknown section (known: {', '.join(SECTIONS)})"
            )
    return raw


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR, or $TMPDIR/whisperd-$UID where there is none (containers), checked
    private (ours, 0700, not a symbolic link) by whisperd.runtime: raises UnsafeRuntime."""
    from whisperd import runtime

    return runtime.runtime_dir()


def default_socket_path() -> Path:
    """Where systemd's whisperd.socket listens: ``$XDG_RUNTIME_DIR/whisperd.sock``."""
    return runtime_dir() / "whisperd.sock"


def socket_path(override: str | None = None, raw: Mapping[str, Any] | None = None) -> Path:
    """The daemon's socket, by one rule for whisperctl, doctor, whisperd-keys and whisperd:
    ``override`` (a ``--socket`` option or a program's own setting such as
    ``keys.socket_path``), else ``$WHISPERD_SOCKET``, else ``daemon.socket_path`` of the
    configuration ``raw`` (``read_toml()``), else ``default_socket_path()``."""
    daemon = raw.get("daemon") if raw is not None else None
    configured = daemon.get("socket_path") if isinstance(daemon, Mapping) else None
    for candidate in (override, os.environ.get("WHISPERD_SOCKET"), configured):
        if isinstance(candidate, str) and candidate:
            return Path(candidate).expanduser()
    return default_socket_path()


def control_socket_path(override: str | None = None, raw: Mapping[str, Any] | None = None) -> Path:
    """whisperd-keys' control socket (``whisperctl dictate``, ``status --follow``), one rule
    for both ends: ``override``, else ``$WHISPERD_KEYS_SOCKET``, else ``keys.control_socket``
    of ``raw``, else ``$XDG_RUNTIME_DIR/whisperd-keys.sock`` (checked private)."""
    keys = raw.get("keys") if raw is not None else None
    configured = keys.get("control_socket") if isinstance(keys, Mapping) else None
    for candidate in (override, os.environ.get("WHISPERD_KEYS_SOCKET"), configured):
        if isinstance(candidate, str) and candidate:
            return Path(candidate).expanduser()
    return runtime_dir() / "whisperd-keys.sock"


@dataclass
class DaemonConfig:
    model: str = "default"
    device: str = "auto"
    compute_type: str = "auto"
    cpu_threads: int = 0
    beam_size: int = 5
    language: str = ""
    idle_timeout: float = 600.0
    vad_filter: bool = True
    min_duration: float = 0.15
    min_rms: float = 0.0005
    max_audio_bytes: int = DEFAULT_MAX_AUDIO_BYTES
    max_audio_seconds: float = 4 * 3600.0
    allow_download: bool = False
    fast_short_audio: bool = True
    stream_window: float = 10.0
    draft_pause: float = 0.25
    pack_files: bool = True
    debug_log_text: bool = False
    socket_path: str = ""
    # A remote engine (docs/remote.md): "remote" sends the audio to remote_url.
    engine: str = "local"
    remote_url: str = ""
    remote_model: str = "whisper-1"
    remote_token_file: str = ""
    remote_timeout: float = 30.0
    fallback: str = "local"

    def validate(self) -> None:
        def need(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"daemon.{key}", message)

        need(bool(self.model.strip()), "model", "must name a model or a path")
        need(self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda")
        need(
            self.compute_type
            in ("auto", "int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16")
            + ("float16", "bfloat16", "float32", "default"),
            "compute_type",
            f"unknown compute type {self.compute_type!r}",
        )
        need(0 <= self.cpu_threads <= 256, "cpu_threads", "must be 0 (automatic) to 256")
        need(1 <= self.beam_size <= 20, "beam_size", "must be within 1..20")
        need(self.idle_timeout > 0, "idle_timeout", "must be a positive number of seconds")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float):
                need(math.isfinite(value), f.name, f"must be a finite number, got {value!r}")
        need(0 <= self.min_duration <= 10, "min_duration", "must be within 0..10 seconds")
        need(0 <= self.min_rms < 1, "min_rms", "must be within 0..1")
        need(
            MAX_AUDIO_FRAME <= self.max_audio_bytes <= 8 * 1024**3,
            "max_audio_bytes",
            f"must be within {MAX_AUDIO_FRAME}..{8 * 1024**3}",
        )
        need(self.max_audio_seconds > 0, "max_audio_seconds", "must be positive")
        need(
            self.stream_window == 0 or 5 <= self.stream_window <= 28,
            "stream_window",
            "must be 0 (off) or within 5..28 seconds",
        )
        need(
            self.draft_pause == 0 or 0.1 <= self.draft_pause <= 5,
            "draft_pause",
            "must be 0 (off) or within 0.1..5 seconds",
        )
        self._validate_remote(need)

    def _validate_remote(self, need: Callable[[bool, str, str], None]) -> None:
        from whisperd.engine.remote.target import remote_problem

        problem = remote_problem(
            self.engine, self.remote_url, self.remote_token_file, self.fallback,
            self.remote_timeout, self.remote_model,
        )  # fmt: skip
        if problem is not None:
            need(False, *problem)

    def idle_timeout_when_activated(self) -> str | None:
        """Raise ``idle_timeout`` to ``MIN_ACTIVATED_IDLE_TIMEOUT`` for a daemon that
        systemd started by socket activation; returns the warning to log, or None.

        Only there can short runs switch the service off (systemd's start limit); run by
        hand or by whisperctl the daemon keeps any positive timeout (tests use 0.3 s).
        """
        if self.idle_timeout >= MIN_ACTIVATED_IDLE_TIMEOUT:
            return None
        configured, self.idle_timeout = self.idle_timeout, MIN_ACTIVATED_IDLE_TIMEOUT
        return (
            f"daemon.idle_timeout = {configured:g} s is raised to "
            f"{MIN_ACTIVATED_IDLE_TIMEOUT:g} s under socket activation, so that idle exits "
            "cannot hit systemd's start limit (docs/configuration.md)"
        )


@dataclass
class HttpConfig:
    """The ``[http]`` section: the OpenAI-compatible front (docs/serving.md). Uploads are
    capped by ``daemon.max_audio_bytes``, as on the Unix socket."""

    listen: str = ""  # "127.0.0.1:8765": bound by whisperd itself when not socket-activated
    token_file: str = ""  # a file holding a bearer token; needed to listen beyond loopback

    def validate(self) -> None:
        if self.listen and ":" not in self.listen:
            raise ConfigError("http.listen", f"{self.listen!r} is not host:port")
        if self.token_file and not os.path.isabs(os.path.expanduser(self.token_file)):
            raise ConfigError("http.token_file", "must be an absolute path (or start with ~)")


@dataclass
class ClientConfig:
    timeout: float = 600.0
    connect_timeout: float = 10.0
    autostart: bool = True

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"client.{f.name}", f"must be a finite number, got {value!r}")
        if self.timeout <= 0:
            raise ConfigError("client.timeout", "must be a positive number of seconds")
        if self.connect_timeout <= 0:
            raise ConfigError("client.connect_timeout", "must be a positive number of seconds")


@dataclass
class TextConfig:
    """The ``[text]`` section (docs/text.md): read by the clients, which send the
    vocabulary with each request and apply the other rules to the text they get."""

    vocabulary: list[str] = field(default_factory=list)
    replacements: list[dict[str, str]] = field(default_factory=list)
    spoken_punctuation: bool = False
    hint_commands: bool = True
    commands: dict[str, list[str]] = field(default_factory=dict)
    literal_after: list[str] = field(default_factory=lambda: list(DEFAULT_LITERAL_AFTER))
    hook: list[str] = field(default_factory=list)
    hook_timeout: float = 5.0

    def validate(self) -> None:
        try:
            self.vocabulary = check_vocabulary(self.vocabulary)
        except ProtocolError as exc:
            raise ConfigError("text.vocabulary", exc.message) from None
        for index, entry in enumerate(self.replacements):
            key = f"text.replacements[{index}]"
            if not isinstance(entry, dict):
                raise ConfigError(key, 'must be a table such as {heard = "...", written = "..."}')
            try:
                replacement_of(entry).compile()
            except RuleError as exc:
                raise ConfigError(key, str(exc)) from None
        known = {command.value for command in Command}
        for name, phrases in self.commands.items():
            if name not in known:
                raise ConfigError(
                    f"text.commands.{name}", f"unknown command (known: {', '.join(sorted(known))})"
                )
            _need_words(f"text.commands.{name}", phrases)
        _need_words("text.literal_after", self.literal_after)
        if self.hook:
            _need_words("text.hook", self.hook)
        if not 0.1 <= self.hook_timeout <= 120:
            raise ConfigError("text.hook_timeout", "must be within 0.1..120 seconds")

    def rules(self) -> TextRules:
        return TextRules.build(
            [replacement_of(entry) for entry in self.replacements],
            self.spoken_punctuation,
            self.commands,
            self.literal_after,
        )

    def request_vocabulary(self) -> list[str]:
        """What the clients send as the ``vocabulary`` option: the user's entries, then,
        with spoken punctuation and ``hint_commands``, the command phrases (tiny.en hears
        "comma" as "comment" unless told to expect it: docs/text.md), at most 100."""
        entries = list(self.vocabulary)
        if self.spoken_punctuation and self.hint_commands:
            seen = {entry.casefold() for entry in entries}
            for phrase in self.rules().command_phrases():
                if phrase.casefold() not in seen and len(phrase) <= MAX_VOCABULARY_ENTRY_CHARS:
                    entries.append(phrase)
                    seen.add(phrase.casefold())
        return entries[:MAX_VOCABULARY_ENTRIES]

    def make_hook(self) -> Hook | None:
        return Hook(self.hook, self.hook_timeout) if self.hook else None


@dataclass
class WyomingConfig:
    """The ``[wyoming]`` section (docs/wyoming.md): the Wyoming front for Home Assistant."""

    listen: str = ""  # "tcp://127.0.0.1:10300" when not socket-activated; "" = off
    allow_remote: bool = False  # Wyoming has no authentication: loopback only unless set
    streaming: bool = True  # transcript-chunk events from live dictation's commits

    def validate(self) -> None:
        if not self.listen:
            return
        host, _port = split_tcp_address(self.listen, "wyoming.listen")
        if not self.allow_remote and not is_loopback(host):
            raise ConfigError(
                "wyoming.listen",
                f"{host} is not a loopback address; Wyoming has no authentication, so "
                "listening beyond this machine needs wyoming.allow_remote = true",
            )


def split_tcp_address(listen: str, key: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` or ``HOST:PORT`` (an IPv6 host in brackets) as (host, port);
    ConfigError else."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(listen if "://" in listen else f"tcp://{listen}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(key, f"not a tcp://HOST:PORT address: {exc}") from None
    if parts.scheme != "tcp" or not host or port is None or parts.path not in ("", "/"):
        raise ConfigError(key, f"{listen!r} is not a tcp://HOST:PORT address")
    if not 1 <= port <= 65535:
        raise ConfigError(key, "the port must be within 1..65535")
    return host, port


def is_loopback(host: str) -> bool:
    """An address of this machine only: 127.0.0.0/8, ::1 or the name localhost."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere


def _need_words(key: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(key, "must be a list of non-empty strings")


class Section(Protocol):
    """A section's dataclass: typed fields with defaults and a ``validate`` method."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def validate(self) -> None: ...


_Section = TypeVar("_Section", bound=Section)

_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}


def _accepted_types(field: Field[Any]) -> tuple[type, ...]:
    """The Python types a field takes, from its annotation ("float", "str | int",
    "list[str]", "dict[str, list[str]]")."""
    annotation = field.type if isinstance(field.type, str) else field.type.__name__
    names = [part.strip() for part in annotation.split("|")]
    return tuple(_TYPES[name.split("[")[0]] for name in names)


def _coerce(key: str, value: Any, field: Field[Any]) -> Any:
    """Check one value against its field's type; ints are taken for floats."""
    accepted = _accepted_types(field)
    if isinstance(value, bool):
        ok = bool in accepted
    elif isinstance(value, int) and float in accepted and int not in accepted:
        value, ok = float(value), True
    else:
        ok = isinstance(value, accepted)
    if not ok:
        expected = " or ".join(t.__name__ for t in accepted)
        raise ConfigError(key, f"must be {expected}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    return value


def _set(instance: Section, section: str, values: Mapping[str, Any]) -> None:
    known = instance.__dataclass_fields__
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})"
            )
        setattr(instance, key, _coerce(f"{section}.{key}", value, known[key]))


def load_section(raw: Mapping[str, Any], section: str, cls: type[_Section]) -> _Section:
    """The section ``section`` of the parsed file ``raw`` as a checked ``cls``."""
    values = raw.get(section, {})
    if not isinstance(values, dict):
        raise ConfigError(section, "must be a table")
    instance = cls()
    _set(instance, section, values)
    instance.validate()
    return instance


def apply_overrides(config: _Section, section: str, overrides: Mapping[str, Any]) -> _Section:
    """Lay command-line values over a loaded section (None = not given), checked by the
    same rules as the file's."""
    _set(config, section, {k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config
