"""Dictation driven by desktop shortcuts: the pure policy (golden), trigger = "none", and
the service with doubles (microphone, daemon, virtual keyboard) driven by ``dictate``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from evdev import ecodes

from tests.unit.keys.keys_fakes import FakeClient, FakeRecorder, ReplaySource
from whisperd.config import ConfigError
from whisperd.control.protocol import Action, Code, ControlError
from whisperd.keys import app
from whisperd.keys.config import KeysConfig, load_keys_config
from whisperd.keys.layout import CharMap, LayoutName, decode
from whisperd.keys.service import DictationService
from whisperd.keys.shortcuts import NoKeyboards, ShortcutPolicy
from whisperd.keys.status import Status
from whisperd.keys.statusfeed import StatusFeed
from whisperd.keys.trigger import (
    CancelDictation,
    KeyEvent,
    Mode,
    StartRecording,
    StopRecording,
    TriggerMachine,
)
from whisperd.keys.typer import Typer
from whisperd.keys.virtual import RecordingKeyboard

US = CharMap.for_layout(LayoutName("us"))
ONE_SECOND = b"\x10\x00" * 16000
DEV = "/dev/input/event3"

# --- the pure policy -----------------------------------------------------------------

GOLDEN = [
    # (action, recording, actions)
    (Action.START, False, [StartRecording(10.0)]),
    (Action.START, True, []),
    (Action.STOP, True, [StopRecording(10.0, "shortcut")]),
    (Action.STOP, False, []),
    (Action.TOGGLE, False, [StartRecording(10.0)]),
    (Action.TOGGLE, True, [StopRecording(10.0, "shortcut")]),
    (Action.CANCEL, True, [CancelDictation(10.0)]),
    (Action.CANCEL, False, [CancelDictation(10.0)]),
]


@pytest.mark.parametrize(("action", "recording", "expected"), GOLDEN)
def test_policy_golden(action: Action, recording: bool, expected: list[object]) -> None:
    policy = ShortcutPolicy(settle=0.5)
    assert policy.command(action, recording, 10.0) == expected
    # whatever the command did, the shortcut's keys may still be down: typing waits
    assert policy.typing_blocked(10.49, shortcut_recording=False)
    assert not policy.typing_blocked(10.5, shortcut_recording=False)


def test_policy_blocks_typing_during_a_shortcut_recording_unless_live() -> None:
    held = ShortcutPolicy(settle=0.5)
    held.command(Action.START, False, 0.0)
    assert held.typing_blocked(100.0, shortcut_recording=True)  # hold-to-talk: keys down
    assert not held.typing_blocked(100.0, shortcut_recording=False)
    toggles = ShortcutPolicy(settle=0.5, live_typing=True)
    toggles.command(Action.START, False, 0.0)
    assert toggles.typing_blocked(0.2, shortcut_recording=True)
    assert not toggles.typing_blocked(0.6, shortcut_recording=True)


def test_policy_settle_is_never_shortened_by_an_earlier_clock() -> None:
    policy = ShortcutPolicy(settle=1.0)
    policy.command(Action.STOP, True, 5.0)
    policy.command(Action.STOP, False, 4.0)  # a late command with an older time stamp
    assert policy.typing_blocked(5.5, shortcut_recording=False)


def test_no_keyboards_reads_nothing() -> None:
    source = NoKeyboards()
    assert source.poll(0.0) == [] and source.devices() == []
    assert not source.is_grabbed(DEV)
    source.wake()
    assert source.poll(5.0) == []  # returns at once after a wake
    source.close()


# --- configuration -------------------------------------------------------------------


def test_trigger_none_is_valid_and_reads_no_keyboard(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_keys_config({"keys": {"trigger": "none", "settle": 0.8}})
    assert not config.reads_keyboards and config.trigger_codes == ()
    assert config.settle == 0.8

    def no_evdev(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("trigger = none must not open /dev/input")

    monkeypatch.setattr(app, "EvdevKeyboardSource", no_evdev)
    keyboard = RecordingKeyboard()
    service = app.build_service(
        config, keyboard, Typer(keyboard, US, delay=0), FakeRecorder([ONE_SECOND])
    )
    assert isinstance(service.source, NoKeyboards)
    assert service.shortcuts.settle == 0.8


@pytest.mark.parametrize("settle", [-0.1, 5.1])
def test_settle_is_bounded(settle: float) -> None:
    with pytest.raises(ConfigError, match="keys.settle"):
        load_keys_config({"keys": {"settle": settle}})


def test_an_evdev_trigger_still_needs_a_valid_key() -> None:
    with pytest.raises(ConfigError, match="keys.trigger"):
        load_keys_config({"keys": {"trigger": "nonesuch"}})


# --- the service, driven by dictate ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(
        self,
        client: FakeClient | None = None,
        live: bool = True,
        live_typing: bool = False,
        recorder: Any = None,
        evdev: bool = False,
    ) -> None:
        self.client = client or FakeClient("Hello world.")
        self.keyboard = RecordingKeyboard()
        self.clock = Clock()
        self.statuses: list[Status] = []
        feed = StatusFeed("", probe=lambda path: None)
        feed.listeners.append(self.statuses.append)
        self.source: Any = ReplaySource() if evdev else NoKeyboards()
        self.service = DictationService(
            TriggerMachine(combo=(ecodes.KEY_INSERT,), mode=Mode.HOLD, max_recording=60),
            self.source,
            recorder or FakeRecorder([ONE_SECOND, ONE_SECOND]),
            self.keyboard,
            Typer(self.keyboard, US, delay=0, sleep=lambda s: None),
            lambda: self.client,  # type: ignore[arg-type,return-value]
            KeysConfig(language="en", live=live),
            clock=self.clock,
            sleep=lambda s: None,
            shortcuts=ShortcutPolicy(settle=0.5, live_typing=live_typing),
            status=feed,
        )
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.thread.start()

    def typed(self) -> str:
        return decode(US.keymap, self.keyboard.events)

    def wait(self, condition: Any, what: str) -> None:
        for _ in range(500):
            if condition():
                return
            threading.Event().wait(0.01)
        pytest.fail(f"never happened: {what}")

    def waiting_to_type(self) -> bool:
        session = self.service.sessions[-1]
        typist = session.typist
        return typist is not None and typist.machine.waiting_for_keys

    def states(self) -> list[str]:
        return [str(s.state) for s in self.statuses]

    def close(self) -> None:
        self.service.stop_event.set()
        self.thread.join(5)


@pytest.fixture
def harnesses() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        h.close()


def test_start_stop_types_only_after_the_settle_time(harnesses: list[Harness]) -> None:
    h = Harness()
    harnesses.append(h)
    assert h.service.dictate(Action.START) == "recording"
    h.clock.now = 2.0
    assert h.service.dictate(Action.STOP) in ("transcribing", "typing")
    h.wait(h.waiting_to_type, "the text queued, waiting for the settle time")
    assert h.keyboard.events == []  # Super (say) may still be down: nothing typed yet
    h.clock.now = 2.6
    h.wait(lambda: h.typed() == "Hello world.", "typed after the settle time")
    h.wait(lambda: h.states()[-1] == "idle", "back to idle")
    assert h.states() == ["recording", "transcribing", "typing", "idle"]
    assert h.keyboard.held() == frozenset()


def test_toggle_and_the_no_op_commands(harnesses: list[Harness]) -> None:
    h = Harness()
    harnesses.append(h)
    assert h.service.dictate(Action.STOP) == "idle"  # stop while idle: ok, nothing
    assert h.service.dictate(Action.TOGGLE) == "recording"
    assert h.service.dictate(Action.START) == "recording"  # start while recording: no-op
    assert len(h.service.sessions) == 1
    h.clock.now = 1.0
    assert h.service.dictate(Action.TOGGLE) in ("transcribing", "typing")
    h.clock.now = 2.0
    h.wait(lambda: h.typed() == "Hello world.", "typed")


def test_live_pieces_wait_for_the_stop_during_a_shortcut_recording(
    harnesses: list[Harness],
) -> None:
    client = FakeClient(pieces=["One two.", "Three four."], final="Five.")
    h = Harness(client)
    harnesses.append(h)
    h.service.dictate(Action.START)
    h.clock.now = 10.0  # long past the settle time, but the shortcut may still be held
    session = h.service.sessions[0]
    h.wait(lambda: session.pieces == 2, "two pieces committed while recording")
    h.wait(h.waiting_to_type, "pieces held back")
    assert h.keyboard.events == []
    h.service.dictate(Action.STOP)
    h.clock.now = 11.0
    h.wait(lambda: h.typed() == "One two. Three four. Five.", "typed after the stop")


def test_live_typing_for_toggle_shortcuts_when_asked(harnesses: list[Harness]) -> None:
    client = FakeClient(pieces=["One two."], final="Three.")
    client.finish_gate.clear()  # the recording does not end by itself
    h = Harness(client, live_typing=True)
    harnesses.append(h)
    h.service.dictate(Action.START)
    h.clock.now = 1.0
    h.wait(lambda: h.typed() == "One two.", "typed while still recording")
    assert h.service.snapshot().state == "recording"
    client.finish_gate.set()
    h.service.dictate(Action.STOP)
    h.clock.now = 2.0
    h.wait(lambda: h.typed() == "One two. Three.", "the rest typed")


def test_cancel_types_nothing(harnesses: list[Harness]) -> None:
    h = Harness()
    harnesses.append(h)
    h.service.dictate(Action.START)
    assert h.service.dictate(Action.CANCEL) == "idle"
    h.clock.now = 5.0
    h.service.sessions[0].join(5)
    assert h.keyboard.events == []


class BrokenMicrophone:
    def begin(self) -> Any:
        raise OSError("no such device")

    def close(self) -> None:
        pass


def test_start_without_a_microphone_is_unavailable(harnesses: list[Harness]) -> None:
    h = Harness(recorder=BrokenMicrophone())
    harnesses.append(h)
    with pytest.raises(ControlError) as caught:
        h.service.dictate(Action.START)
    assert caught.value.code == Code.UNAVAILABLE
    assert "no such device" in caught.value.message
    assert h.service.snapshot().state == "error"


def test_shortcuts_and_the_trigger_key_together(harnesses: list[Harness]) -> None:
    h = Harness(evdev=True)
    harnesses.append(h)
    source = h.source
    assert isinstance(source, ReplaySource)
    h.service.stop_event.set()  # this one is stepped by hand
    h.thread.join(5)
    h.service.stop_event.clear()
    h.service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 1, 0.0)])  # the key starts
    h.clock.now = 2.0
    answer: list[str] = []
    asker = threading.Thread(target=lambda: answer.append(h.service.dictate(Action.STOP)))
    asker.start()
    while asker.is_alive():
        h.service.step([])  # the main loop takes the command
        asker.join(0.01)
    assert answer[0] in ("transcribing", "typing")  # the shortcut stopped the key's recording
    h.service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 0, 2.2)])  # the release: nothing more
    assert len(h.service.sessions) == 1
    h.clock.now = 3.0
    h.service.sessions[0].join(5)
    h.wait(lambda: h.typed() == "Hello world.", "typed")


def test_a_command_during_shutdown_is_refused_not_kept_waiting() -> None:
    h = Harness()
    h.close()  # the main loop has ended
    with pytest.raises(ControlError) as caught:
        h.service.dictate(Action.TOGGLE)
    assert caught.value.code == Code.UNAVAILABLE
    h.service.stop_event.clear()  # stopped after the check: still refused, not BUSY
    waiting: list[BaseException] = []

    def ask() -> None:
        try:
            h.service.dictate(Action.TOGGLE)
        except ControlError as exc:
            waiting.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    h.service.stop_event.set()
    asker.join(5)
    assert not asker.is_alive()
    assert isinstance(waiting[0], ControlError) and waiting[0].code == Code.UNAVAILABLE
