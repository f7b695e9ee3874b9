"""Configuration: $XDG_CONFIG_HOME/whisperd/config.toml, overridden by command-line options.

Every key is documented with its default in docs/configuration.md. A bad value is refused
at start with a message that names the key, e.g. ``daemon.idle_timeout``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from whisperd.protocol import DEFAULT_MAX_AUDIO_BYTES, MAX_AUDIO_FRAME


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
    """The whole configuration file as a dict; {} when there is no file."""
    target = Path(path) if path is not None else config_path()
    try:
        with open(target, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(target), f"not valid TOML: {exc}") from None


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR, or $TMPDIR/whisperd-$UID where there is none (containers), checked
    private (ours, 0700, not a symbolic link) by whisperd.runtime: raises UnsafeRuntime."""
    from whisperd import runtime

    return runtime.runtime_dir()


def default_socket_path() -> Path:
    return runtime_dir() / "whisperd.sock"


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


@dataclass
class ClientConfig:
    timeout: float = 600.0
    connect_timeout: float = 10.0
    autostart: bool = True

    def validate(self) -> None:
        if self.timeout <= 0:
            raise ConfigError("client.timeout", "must be a positive number of seconds")
        if self.connect_timeout <= 0:
            raise ConfigError("client.connect_timeout", "must be a positive number of seconds")


_Section = TypeVar("_Section", DaemonConfig, ClientConfig)


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    """Check a TOML value against the type of the field's default."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool):
        return value
    raise ConfigError(
        f"{section}.{key}", f"must be {expected.__name__}, got {type(value).__name__} {value!r}"
    )


def load_section(raw: dict[str, Any], section: str, cls: type[_Section]) -> _Section:
    values = raw.get(section, {})
    if not isinstance(values, dict):
        raise ConfigError(section, "must be a table")
    instance = cls()
    known = {f.name for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})"
            )
        setattr(instance, key, _coerce(section, key, value, getattr(instance, key)))
    instance.validate()
    return instance
