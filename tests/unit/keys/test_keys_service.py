"""The orchestrator with doubles: keyboards, microphone, daemon and virtual keyboard."""

from __future__ import annotations

import threading

import pytest
from evdev import ecodes

from tests.unit.keys.keys_fakes import FakeClient, FakeRecorder, ReplaySource
from whisperd.keys.config import KeysConfig
from whisperd.keys.layout import CharMap, LayoutName, decode
from whisperd.keys.service import DictationService
from whisperd.keys.trigger import DeviceRemoved, KeyEvent, Mode, TriggerMachine
from whisperd.keys.typer import Typer
from whisperd.keys.virtual import RecordingKeyboard

DEV = "/dev/input/event3"
ONE_SECOND = b"\x10\x00" * 16000
US = CharMap.for_layout(LayoutName("us"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(
        self,
        client: FakeClient | None = None,
        chunks: list[bytes] | None = None,
        mode: Mode = Mode.HOLD,
        factory_error: Exception | None = None,
    ) -> None:
        self.config = KeysConfig(language="en")
        self.client = client or FakeClient()
        self.source = ReplaySource()
        self.recorder = FakeRecorder(chunks if chunks is not None else [ONE_SECOND, ONE_SECOND])
        self.keyboard = RecordingKeyboard()
        self.typer = Typer(self.keyboard, US, delay=0, sleep=lambda s: None)
        self.clock = Clock()
        self.factory_calls = 0

        def factory() -> FakeClient:
            self.factory_calls += 1
            if factory_error is not None:
                raise factory_error
            return self.client

        self.service = DictationService(
            TriggerMachine(combo=(ecodes.KEY_INSERT,), mode=mode, max_recording=60),
            self.source,
            self.recorder,
            self.keyboard,
            self.typer,
            factory,  # type: ignore[arg-type]
            self.config,
            clock=self.clock,
            sleep=lambda s: None,
        )

    def key(self, code: int, value: int, at: float) -> None:
        self.clock.now = at
        self.service.step([KeyEvent(DEV, code, value, at)])

    def finish_sessions(self) -> None:
        for session in self.service.sessions:
            session.join(5)
            assert not session.is_alive()

    def typed_text(self) -> str:
        return decode(US.keymap, self.keyboard.events)


def test_hold_records_streams_and_types(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    h = Harness(FakeClient("Ask not what your country can do for you."))
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    assert h.factory_calls == 1 or h.service.sessions, "a session starts at key-down"
    h.key(ecodes.KEY_INSERT, 2, 0.5)
    h.key(ecodes.KEY_INSERT, 0, 2.0)
    h.finish_sessions()
    stream = h.client.streams[0]
    assert b"".join(stream.sent) == ONE_SECOND * 2 and stream.finished
    assert h.client.stream_args[0]["sample_rate"] == 16000
    assert h.client.stream_args[0]["options"]["language"] == "en"
    assert h.typed_text() == "Ask not what your country can do for you."
    assert h.keyboard.held() == frozenset()
    assert "typed 41 characters" in caplog.text
    assert "country" not in caplog.text, "the text is never logged without debug_log_text"
    assert h.client.closed == 1


def test_stream_opened_at_key_down_before_release() -> None:
    h = Harness()
    h.client.finish_gate.clear()
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    session = h.service.sessions[0]
    for _ in range(100):
        if h.client.streams and h.client.streams[0].sent:
            break
        threading.Event().wait(0.01)
    assert h.client.streams[0].sent, "audio is streamed while the key is still held"
    h.key(ecodes.KEY_INSERT, 0, 2.0)
    h.client.finish_gate.set()
    session.join(5)


def test_skipped_result_types_nothing() -> None:
    h = Harness(FakeClient("", skipped="silent"))
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.key(ecodes.KEY_INSERT, 0, 1.0)
    h.finish_sessions()
    assert h.keyboard.events == []


def test_too_short_recording_is_cancelled() -> None:
    h = Harness(chunks=[b"\x00\x00" * 1600])  # 0.1 s
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.key(ecodes.KEY_INSERT, 0, 0.1)
    h.finish_sessions()
    assert h.client.streams[0].cancelled and not h.client.streams[0].finished
    assert h.keyboard.events == []


def test_short_tap_with_preroll_is_still_too_short() -> None:
    h = Harness()  # 2 s in the capture (pre-roll and all), but the key was down 0.1 s
    h.key(ecodes.KEY_INSERT, 1, 5.0)
    h.key(ecodes.KEY_INSERT, 0, 5.1)
    h.finish_sessions()
    assert h.client.streams[0].cancelled
    assert h.keyboard.events == []


def test_daemon_unavailable_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(factory_error=ConnectionRefusedError("no daemon"))
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.key(ecodes.KEY_INSERT, 0, 1.0)
    h.finish_sessions()
    assert "dictation failed: no daemon" in caplog.text
    assert h.keyboard.events == []
    h.key(ecodes.KEY_A, 1, 2.0)  # the service keeps working
    assert h.keyboard.events == [(ecodes.KEY_A, 1)]


def test_typing_waits_for_modifiers() -> None:
    h = Harness(FakeClient("hi"))
    h.key(ecodes.KEY_LEFTCTRL, 1, 0.0)
    h.key(ecodes.KEY_INSERT, 1, 0.1)
    h.key(ecodes.KEY_INSERT, 0, 1.0)
    session = h.service.sessions[0]
    session.join(0.3)
    assert session.is_alive(), "Ctrl is still held: typing must wait"
    assert h.keyboard.events == [(ecodes.KEY_LEFTCTRL, 1)]
    h.key(ecodes.KEY_LEFTCTRL, 0, 1.5)
    h.finish_sessions()
    assert decode(US.keymap, h.keyboard.events[2:]) == "hi"


def test_grabbed_keys_forwarded_trigger_not() -> None:
    h = Harness(FakeClient("", skipped="silent"))
    h.key(ecodes.KEY_X, 1, 0.0)
    h.key(ecodes.KEY_X, 0, 0.1)
    h.key(ecodes.KEY_INSERT, 1, 0.2)
    h.key(ecodes.KEY_INSERT, 0, 0.3)
    h.finish_sessions()
    assert h.keyboard.events == [(ecodes.KEY_X, 1), (ecodes.KEY_X, 0)]


def test_not_grabbed_nothing_forwarded() -> None:
    h = Harness()
    h.source.grabbed = False
    h.key(ecodes.KEY_X, 1, 0.0)
    assert h.keyboard.events == []


def test_max_recording_stops_by_itself() -> None:
    h = Harness(FakeClient("done"))
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.clock.now = 61.0
    h.service.step([])
    h.service.sessions[0].join(0.2)
    assert h.keyboard.events == [], "typing waits until the trigger is let go"
    h.key(ecodes.KEY_INSERT, 0, 62.0)  # the release no longer stops anything
    h.finish_sessions()
    assert h.typed_text() == "done"
    assert len(h.client.streams) == 1


def test_unplug_mid_recording_does_not_crash() -> None:
    h = Harness(FakeClient("ok"))
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.service.step([DeviceRemoved(DEV, 1.0)])
    h.finish_sessions()
    assert h.typed_text() == "ok"


def test_shutdown_releases_held_keys_and_cancels() -> None:
    h = Harness()
    h.client.finish_gate.clear()
    h.key(ecodes.KEY_LEFTSHIFT, 1, 0.0)  # the user holds Shift through the grab
    h.key(ecodes.KEY_INSERT, 1, 0.1)
    h.service.stop_event.set()
    h.service.run()  # returns at once and shuts down
    h.client.finish_gate.set()
    assert h.keyboard.held() == frozenset()
    assert h.keyboard.events[-1] == (ecodes.KEY_LEFTSHIFT, 0)
    assert h.source.closed
    assert h.client.streams[0].cancelled


def test_panic_chord_stops_the_service() -> None:
    h = Harness()
    for code in (ecodes.KEY_BACKSPACE, ecodes.KEY_ESC, ecodes.KEY_ENTER):
        h.key(code, 1, 0.0)
    assert h.service.stop_event.is_set()


def test_recorder_failure_keeps_running(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()

    def broken() -> None:
        raise OSError("device busy")

    h.recorder.begin = broken  # type: ignore[method-assign,assignment]
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.key(ecodes.KEY_INSERT, 0, 1.0)
    h.finish_sessions()
    assert "cannot start recording: device busy" in caplog.text
    assert h.client.streams == []


def test_slow_microphone_never_blocks_the_key_loop() -> None:
    h = Harness(FakeClient("late"))
    opened = threading.Event()
    real_begin = h.recorder.begin

    def slow_begin() -> object:
        opened.wait(5)  # a sound server that takes its time
        return real_begin()

    h.recorder.begin = slow_begin  # type: ignore[method-assign,assignment]
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.key(ecodes.KEY_X, 1, 0.1)  # passed on at once while the microphone opens
    h.key(ecodes.KEY_X, 0, 0.2)
    h.key(ecodes.KEY_INSERT, 0, 1.0)  # released before the microphone was even open
    assert h.keyboard.events == [(ecodes.KEY_X, 1), (ecodes.KEY_X, 0)]
    opened.set()
    h.finish_sessions()
    assert h.recorder.captures[0].stopped
    assert decode(US.keymap, h.keyboard.events[2:]) == "late"
