"""The ``[keys]`` section of config.toml (documented key by key in docs/keys.md).

Read, type-checked and overridden by the shared loader of whisperd/config.py, like every
section; a bad value is refused at start with a message naming the key, e.g.
``keys.trigger``. Command-line options are applied on top with ``apply_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from whisperd import config as shared
from whisperd.config import ConfigError
from whisperd.keys.keynames import KeyNameError, parse_combo
from whisperd.keys.trigger import Mode
from whisperd.keys.typer import Fallback

SUPPRESS_CHOICES = ("grab", "none")
# trigger = "none": no keyboard is read at all; dictation is started and stopped only
# through the control socket (whisperctl dictate, from a desktop shortcut).
NO_TRIGGER = "none"
BACKENDS = ("auto", "python-uinput", "evdev")


@dataclass
class KeysConfig:
    trigger: str = "insert"
    mode: str = "hold"
    hold_threshold: float = 0.35
    max_recording: float = 120.0
    min_recording: float = 0.3
    suppress: str = "grab"
    keyboards: list[str] = field(default_factory=list)
    audio_device: str | int = ""
    sample_rate: int = 16000
    keep_open: bool = True
    preroll: float = 0.3
    layout: str = ""
    variant: str = ""
    xkb_options: str = ""
    fallback: str = "unicode"
    paste_key: str = "ctrl+v"
    type_delay: float = 0.002
    language: str = ""
    uinput_backend: str = "auto"
    feedback_sound: bool = False
    feedback_notify: bool = False
    socket_path: str = ""
    timeout: float = 120.0
    debug_log_text: bool = False
    live: bool = True
    # The control socket (docs/keys.md "Without the input group").
    control_socket: str = ""
    status_text: bool = False  # followers may ask for the text so far (privacy: off)
    # After `whisperctl dictate` start/stop/cancel, typing waits this long: the user may
    # still hold the shortcut's modifiers, which whisperd-keys cannot see.
    settle: float = 0.5
    # Type while a shortcut-started recording runs (toggle shortcuts only: with a
    # hold-to-talk binding the modifiers are held the whole time).
    shortcut_live_typing: bool = False

    @property
    def reads_keyboards(self) -> bool:
        return self.trigger.strip().lower() != NO_TRIGGER

    @property
    def trigger_codes(self) -> tuple[int, ...]:
        """The trigger's key codes; none without a keyboard trigger."""
        return parse_combo(self.trigger) if self.reads_keyboards else ()

    @property
    def options(self) -> dict[str, Any] | None:
        """Transcription options sent with each stream."""
        options: dict[str, Any] = {"without_timestamps": True}
        if self.language:
            options["language"] = self.language
        return options

    @property
    def paste_codes(self) -> tuple[int, ...]:
        return parse_combo(self.paste_key)

    def validate(self) -> None:
        specs = [("paste_key", self.paste_key)]
        if self.reads_keyboards:
            specs.insert(0, ("trigger", self.trigger))
        for key, spec in specs:
            try:
                parse_combo(spec)
            except KeyNameError as exc:
                raise ConfigError(f"keys.{key}", str(exc)) from None
        _choice("mode", self.mode, tuple(m.value for m in Mode))
        _choice("suppress", self.suppress, SUPPRESS_CHOICES)
        _choice("fallback", self.fallback, tuple(f.value for f in Fallback))
        _choice("uinput_backend", self.uinput_backend, BACKENDS)
        _need(0.05 <= self.hold_threshold <= 5, "hold_threshold", "must be 0.05..5 seconds")
        _need(1 <= self.max_recording <= 3600, "max_recording", "must be 1..3600 seconds")
        _need(0 <= self.min_recording <= 5, "min_recording", "must be 0..5 seconds")
        _need(8000 <= self.sample_rate <= 192000, "sample_rate", "must be 8000..192000 Hz")
        _need(0 <= self.preroll <= 2, "preroll", "must be 0..2 seconds")
        _need(0 <= self.type_delay <= 0.5, "type_delay", "must be 0..0.5 seconds")
        _need(self.timeout > 0, "timeout", "must be a positive number of seconds")
        _need(0 <= self.settle <= 5, "settle", "must be 0..5 seconds")
        _need(
            all(isinstance(k, str) and k for k in self.keyboards),
            "keyboards",
            "must be a list of device paths or names",
        )


def _need(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"keys.{key}", message)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    _need(value in allowed, key, f"must be one of {', '.join(allowed)} (got {value!r})")


def load_keys_config(raw: dict[str, Any]) -> KeysConfig:
    """Build and check the ``[keys]`` section from the whole parsed config file."""
    return shared.load_section(raw, "keys", KeysConfig)


def apply_overrides(config: KeysConfig, overrides: dict[str, Any]) -> KeysConfig:
    """Command-line values (None = not given) win over the file."""
    return shared.apply_overrides(config, "keys", overrides)
