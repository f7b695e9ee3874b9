"""Dictation driven by desktop shortcuts (``whisperctl dictate``) instead of a keyboard.

``ShortcutPolicy`` is pure (golden-tested): a control action and whether a recording runs
in, the service's actions out; plus the one rule that keeps typed text away from the
shortcut's modifiers.

The modifier problem: a shortcut such as Super+D runs ``whisperctl dictate stop`` while
Super (and D) are still down, and whisperd-keys, which reads no keyboard, cannot see when
they come up. What a compositor does with a modifier held on one keyboard while another
(our virtual one) types is not uniform: X11 and wlroots/Mutter/KWin merge the modifier
state of a seat's keyboards, so our letters would arrive as Super+letters. Sending key-up
events for the modifiers from the virtual keyboard does not help: libinput and the X
server drop the release of a key that device never pressed, and the real key stays down.
So typing waits ``settle`` seconds after each control command (docs/keys.md), and while a
shortcut-started recording runs (a hold-to-talk binding keeps the modifiers down the whole
time) unless ``shortcut_live_typing`` says the bindings are toggles.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from whisperd.control.protocol import Action
from whisperd.keys.trigger import CancelDictation, InputEvent, StartRecording, StopRecording

ServiceAction = StartRecording | StopRecording | CancelDictation
STOP_REASON = "shortcut"


@dataclass
class ShortcutPolicy:
    settle: float = 0.5
    live_typing: bool = False
    _settle_until: float = 0.0

    def command(self, action: Action, recording: bool, now: float) -> list[ServiceAction]:
        """What ``whisperctl dictate ACTION`` does; a start while recording and a stop
        while idle do nothing. Every command may come with the shortcut's keys held."""
        self._settle_until = max(self._settle_until, now + self.settle)
        if action is Action.CANCEL:
            return [CancelDictation(now)]
        start = action is Action.START or (action is Action.TOGGLE and not recording)
        if start:
            return [] if recording else [StartRecording(now)]
        return [StopRecording(now, STOP_REASON)] if recording else []

    def typing_blocked(self, now: float, shortcut_recording: bool) -> bool:
        """Whether typing must wait: within ``settle`` of the last command, or while a
        recording started by a shortcut runs (unless ``live_typing``)."""
        if now < self._settle_until:
            return True
        return shortcut_recording and not self.live_typing


class NoKeyboards:
    """The keyboard source of ``trigger = "none"``: opens no /dev/input device at all."""

    def __init__(self) -> None:
        self._wake = threading.Event()

    def poll(self, timeout: float) -> list[InputEvent]:
        self._wake.wait(timeout)
        self._wake.clear()
        return []

    def wake(self) -> None:
        """A control command is waiting: end the current poll early."""
        self._wake.set()

    def is_grabbed(self, device: str) -> bool:
        return False

    def devices(self) -> list[str]:
        return []

    def close(self) -> None:
        self._wake.set()
