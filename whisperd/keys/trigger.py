"""The trigger as a pure state machine: input events in, actions out, time passed in.

Nothing here touches hardware or the clock, so the golden tests replay recorded evdev
sequences (press = 1, auto-repeat = 2, release = 0, hot-plug) and compare the actions.

Cancel: pressing the cancel key (Escape by default) while recording, or while the text
of a dictation is still being transcribed or typed (``set_busy``), cancels that
dictation; that press and its release do not reach applications.

Modes:
- ``hold``: recording runs while the trigger is held (push-to-talk).
- ``toggle``: a press starts recording, the next press stops it.
- ``auto``: a press starts recording; releasing it after at least ``hold_threshold``
  seconds stops it (push-to-talk), releasing it sooner latches recording on until the
  next press (a tap toggles).

A trigger may be a chord such as RIGHTCTRL+SPACE: the last key is the *main* key; it
triggers only while the other keys are already held. Only presses of the main key that
triggered are suppressed (not forwarded when keyboards are grabbed): the other chord keys
are ordinary modifiers and must keep working for everything else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from evdev import ecodes

KEY_UP = 0
KEY_DOWN = 1
KEY_REPEAT = 2

# keyd's escape hatch: holding these three together ungrabs every keyboard and exits, in
# case a bug ever leaves the keyboards grabbed but unusable.
PANIC_CHORD: frozenset[int] = frozenset({ecodes.KEY_BACKSPACE, ecodes.KEY_ESC, ecodes.KEY_ENTER})


class Mode(enum.StrEnum):
    HOLD = "hold"
    TOGGLE = "toggle"
    AUTO = "auto"


@dataclass(frozen=True)
class KeyEvent:
    """One EV_KEY event of a physical keyboard (``device`` is its /dev/input path)."""

    device: str
    code: int
    value: int
    time: float


@dataclass(frozen=True)
class DeviceRemoved:
    """A keyboard disappeared (unplugged, or its node could no longer be read)."""

    device: str
    time: float


InputEvent = KeyEvent | DeviceRemoved


@dataclass(frozen=True)
class StartRecording:
    time: float


@dataclass(frozen=True)
class StopRecording:
    time: float
    # "release", "toggle", "max_length" or "device_removed"
    reason: str


@dataclass(frozen=True)
class Forward:
    """Pass this event on to applications (used when the keyboards are grabbed)."""

    event: KeyEvent


@dataclass(frozen=True)
class Panic:
    time: float


@dataclass(frozen=True)
class CancelDictation:
    """Drop the dictation: stop recording, stop typing (typed text stays)."""

    time: float


Action = StartRecording | StopRecording | Forward | Panic | CancelDictation


class _State(enum.Enum):
    IDLE = "idle"
    HELD = "held"  # recording until the trigger is released (hold, or auto before deciding)
    LATCHED = "latched"  # recording until the trigger is pressed again


@dataclass
class TriggerMachine:
    combo: tuple[int, ...]
    mode: Mode = Mode.HOLD
    hold_threshold: float = 0.35
    max_recording: float = 120.0
    cancel_key: int | None = ecodes.KEY_ESC

    _pressed: dict[str, set[int]] = field(default_factory=dict)
    # (device, code) presses of the main key that triggered: their repeats and release are
    # swallowed too, so applications never see half a key stroke.
    _suppressed: set[tuple[str, int]] = field(default_factory=set)
    _state: _State = _State.IDLE
    _started_at: float = 0.0
    _pressed_at: float = 0.0
    _panicked: bool = False
    _busy: bool = False

    def __post_init__(self) -> None:
        if not self.combo:
            raise ValueError("a trigger needs at least one key")
        if self.cancel_key in self.combo:
            self.cancel_key = None  # a trigger key cannot also cancel

    def set_busy(self, busy: bool) -> None:
        """Whether a dictation is still being transcribed or typed after recording."""
        self._busy = busy

    @property
    def main_key(self) -> int:
        return self.combo[-1]

    @property
    def recording(self) -> bool:
        return self._state is not _State.IDLE

    def keys_down(self) -> frozenset[int]:
        """Every key code currently held on any physical keyboard."""
        down: set[int] = set()
        for codes in self._pressed.values():
            down |= codes
        return frozenset(down)

    def feed(self, event: InputEvent) -> list[Action]:
        if isinstance(event, DeviceRemoved):
            return self._device_removed(event)
        if event.value == KEY_REPEAT:
            return [] if (event.device, event.code) in self._suppressed else [Forward(event)]
        if event.value == KEY_DOWN:
            return self._press(event)
        if event.value == KEY_UP:
            return self._release(event)
        return [Forward(event)]

    def tick(self, now: float) -> list[Action]:
        """Called regularly; stops a recording that reached the maximum length."""
        if self.recording and now - self._started_at >= self.max_recording:
            self._state = _State.IDLE
            return [StopRecording(now, "max_length")]
        return []

    def _press(self, event: KeyEvent) -> list[Action]:
        down = self._pressed.setdefault(event.device, set())
        down.add(event.code)
        actions: list[Action] = []
        if event.code == self.cancel_key and (self.recording or self._busy):
            self._suppressed.add((event.device, event.code))
            self._state = _State.IDLE
            actions.append(CancelDictation(event.time))
        elif event.code == self.main_key and self._others_held():
            self._suppressed.add((event.device, event.code))
            if not self._main_held(exclude=event):
                actions += self._trigger_pressed(event.time)
        else:
            actions.append(Forward(event))
        if not self._panicked and PANIC_CHORD <= self.keys_down():
            self._panicked = True
            actions.append(Panic(event.time))
        return actions

    def _release(self, event: KeyEvent) -> list[Action]:
        self._pressed.get(event.device, set()).discard(event.code)
        key = (event.device, event.code)
        if key not in self._suppressed:
            return [Forward(event)]
        self._suppressed.discard(key)
        if event.code != self.main_key or self._main_held():
            return []  # the cancel key's release, or one of two main keys held
        return self._trigger_released(event.time, "release")

    def _device_removed(self, event: DeviceRemoved) -> list[Action]:
        held = self._pressed.pop(event.device, set())
        was_held = any(k == (event.device, self.main_key) for k in self._suppressed)
        # Keys it held that applications saw pressed are released for them (an unplugged
        # keyboard, a dropped Bluetooth link: no release will ever come, and the virtual
        # keyboard would repeat the key), unless another keyboard holds the same key.
        forwarded = {c for c in held if (event.device, c) not in self._suppressed}
        still_down = self.keys_down()
        actions: list[Action] = [
            Forward(KeyEvent(event.device, code, KEY_UP, event.time))
            for code in sorted(forwarded - still_down)
        ]
        self._suppressed = {k for k in self._suppressed if k[0] != event.device}
        if was_held and not self._main_held():
            actions += self._trigger_released(event.time, "device_removed")
        return actions

    def _trigger_pressed(self, now: float) -> list[Action]:
        if self._state is _State.LATCHED:
            self._state = _State.IDLE
            return [StopRecording(now, "toggle")]
        if self._state is _State.HELD:
            return []
        self._state = _State.LATCHED if self.mode is Mode.TOGGLE else _State.HELD
        self._started_at = self._pressed_at = now
        return [StartRecording(now)]

    def _trigger_released(self, now: float, reason: str) -> list[Action]:
        if self._state is not _State.HELD:
            return []
        held_for = now - self._pressed_at
        if self.mode is Mode.AUTO and held_for < self.hold_threshold and reason == "release":
            self._state = _State.LATCHED  # a tap: keep recording until the next tap
            return []
        self._state = _State.IDLE
        return [StopRecording(now, reason)]

    def _others_held(self) -> bool:
        down = self.keys_down()
        return all(code in down for code in self.combo[:-1])

    def _main_held(self, exclude: KeyEvent | None = None) -> bool:
        skip = (exclude.device, exclude.code) if exclude else None
        return any(k != skip and k[1] == self.main_key for k in self._suppressed)
