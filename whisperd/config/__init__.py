"""Configuration: $XDG_CONFIG_HOME/whisperd/config.toml, overridden by command-line options.

One path for every program and section: ``read_toml`` reads and checks the file (an
unknown section, a missing ``--config`` file, invalid UTF-8 or TOML are refused),
``load_section`` builds a section's dataclass from it (unknown keys, wrong types and
non-finite numbers refused, then the section's own ``validate``), ``apply_overrides``
lays command-line values over it and checks again, and ``socket_path`` finds the
daemon's socket by one rule. Every key is documented with its default in
docs/configuration.md. A bad value is refused at start with a ``ConfigError`` that names
the key (``daemon.idle_timeout``) or the file; programs print it on one line, exit 2.

Here: the file, the socket paths and the ``[daemon]`` and ``[client]`` sections; the
loader in ``loading.py``, ``[http]`` and ``[wyoming]`` in ``fronts.py``, ``[text]`` in
``text.py`` (all importable from ``whisperd.config``).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from whisperd.config.fronts import HttpConfig, WyomingConfig, is_loopback, split_tcp_address
from whisperd.config.loading import ConfigError, Section, apply_overrides, load_section
from whisperd.config.text import TextConfig
from whisperd.protocol import DEFAULT_MAX_AUDIO_BYTES, MAX_AUDIO_FRAME

__all__ = [
    "MIN_ACTIVATED_IDLE_TIMEOUT",
    "SECTIONS",
    "ClientConfig",
    "ConfigError",
    "DaemonConfig",
    "HttpConfig",
    "Section",
    "TextConfig",
    "WyomingConfig",
    "apply_overrides",
    "config_path",
    "control_socket_path",
    "default_socket_path",
    "is_loopback",
    "load_section",
    "read_toml",
    "runtime_dir",
    "socket_path",
    "split_tcp_address",
]

SECTIONS = ("client", "daemon", "keys", "text", "http", "wyoming")
"""The sections config.toml may have (keys: docs/keys.md; text: docs/text.md; http:
docs/serving.md; wyoming: docs/wyoming.md; the others: docs/configuration.md)."""

MIN_ACTIVATED_IDLE_TIMEOUT = 5.0
"""The shortest idle timeout of a socket-activated daemon (docs/configuration.md): each
start then lasts at least 5 s, so idle exits alone can never make the five starts in
10 s that trip systemd's default start limit and switch the socket off."""


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
