"""The orchestrator with doubles: keyboards, microphone, daemon and virtual keyboard."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from evdev import ecodes

from tests.unit.keys.keys_fakes import FakeClient, FakeRecorder, ReplaySource
from whisperd.config import TextConfig
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
    # Every test runs with live typing (the default) and with type-at-release (live =
    # false, the behaviour before live dictation), unless it names one.
    default_live = True

    def __init__(
        self,
        client: FakeClient | None = None,
        chunks: list[bytes] | None = None,
        mode: Mode = Mode.HOLD,
        factory_error: Exception | None = None,
        live: bool | None = None,
        combo: tuple[int, ...] = (ecodes.KEY_INSERT,),
        text: TextConfig | None = None,
    ) -> None:
        self.config = KeysConfig(language="en", live=self.default_live if live is None else live)
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
            TriggerMachine(combo=combo, mode=mode, max_recording=60),
            self.source,
            self.recorder,
            self.keyboard,
            self.typer,
            factory,  # type: ignore[arg-type]
            self.config,
            clock=self.clock,
            sleep=lambda s: None,
            text=text,
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

    def wait_typed(self, text: str) -> None:
        for _ in range(500):
            if self.typed_text() == text:
                return
            threading.Event().wait(0.01)
        assert self.typed_text() == text


@pytest.fixture(autouse=True, params=[True, False], ids=["live", "at-release"])
def live_or_not(request: pytest.FixtureRequest) -> Iterator[None]:
    Harness.default_live = request.param
    yield
    Harness.default_live = True


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
    h = Harness(FakeClient("done"), live=False)
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


# -- live typing (each test names its mode) ------------------------------------------------


def live_client() -> FakeClient:
    return FakeClient(pieces=["First piece.", "second one,"], final="and the last.")


def test_live_pieces_are_typed_while_the_key_is_held(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    h = Harness(live_client(), live=True)
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.wait_typed("First piece. Second one,")  # before the release
    assert h.service.sessions[0].is_alive()
    h.key(ecodes.KEY_INSERT, 0, 2.0)
    h.finish_sessions()
    assert h.typed_text() == "First piece. Second one, and the last."
    assert h.client.stream_args[0]["options"]["live"] is True
    assert h.keyboard.held() == frozenset()
    assert "typed 38 characters" in caplog.text and "piece" not in caplog.text


def test_at_release_types_only_after_the_key_is_let_go() -> None:
    h = Harness(live_client(), live=False)
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    threading.Event().wait(0.3)
    assert h.keyboard.events == []
    # A live stream all the same: the daemon's accurate path; the pieces wait for the end.
    assert h.client.stream_args[0]["options"]["live"] is True
    h.key(ecodes.KEY_INSERT, 0, 2.0)
    h.finish_sessions()
    assert h.typed_text() == "First piece. Second one, and the last."  # joined as live


def test_live_waits_while_shift_is_held_then_types_during_the_hold() -> None:
    h = Harness(live_client(), live=True)
    h.key(ecodes.KEY_LEFTSHIFT, 1, 0.0)  # the user holds Shift on any keyboard
    h.key(ecodes.KEY_INSERT, 1, 0.1)
    threading.Event().wait(0.3)
    assert h.keyboard.events == [(ecodes.KEY_LEFTSHIFT, 1)], "Shift held: nothing typed"
    h.key(ecodes.KEY_LEFTSHIFT, 0, 0.5)
    h.keyboard.events = h.keyboard.events[2:]
    h.wait_typed("First piece. Second one,")  # Insert still held
    h.key(ecodes.KEY_INSERT, 0, 2.0)
    h.finish_sessions()
    assert h.typed_text() == "First piece. Second one, and the last."


def test_live_chord_trigger_types_once_its_modifier_is_released() -> None:
    h = Harness(live_client(), live=True, combo=(ecodes.KEY_RIGHTCTRL, ecodes.KEY_SPACE))
    h.key(ecodes.KEY_RIGHTCTRL, 1, 0.0)
    h.key(ecodes.KEY_SPACE, 1, 0.1)
    threading.Event().wait(0.3)
    assert h.keyboard.events == [(ecodes.KEY_RIGHTCTRL, 1)], "Ctrl of the chord held"
    h.key(ecodes.KEY_RIGHTCTRL, 0, 0.5)  # Space (the main key) still held: types now
    h.keyboard.events = h.keyboard.events[2:]
    h.wait_typed("First piece. Second one,")
    h.key(ecodes.KEY_SPACE, 0, 2.0)
    h.finish_sessions()
    assert h.typed_text() == "First piece. Second one, and the last."


def test_live_max_recording_types_the_rest_while_the_key_is_still_held() -> None:
    h = Harness(FakeClient("done"), live=True)
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.clock.now = 61.0
    h.service.step([])
    h.finish_sessions()
    assert h.typed_text() == "done"
    h.key(ecodes.KEY_INSERT, 0, 62.0)
    assert len(h.client.streams) == 1


def test_escape_cancels_the_dictation_typed_text_stays(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    client = FakeClient(pieces=["Kept.", "queued"], final="never typed")
    h = Harness(client, live=True)
    client.piece_gate.clear()  # the second piece waits for the test
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.wait_typed("Kept.")
    h.key(ecodes.KEY_LEFTSHIFT, 1, 0.5)  # the next piece must wait for Shift...
    client.piece_gate.set()
    threading.Event().wait(0.2)
    h.key(ecodes.KEY_ESC, 1, 1.0)  # ...and is dropped by the cancel
    h.key(ecodes.KEY_ESC, 0, 1.1)
    h.key(ecodes.KEY_LEFTSHIFT, 0, 1.2)
    h.key(ecodes.KEY_INSERT, 0, 2.0)
    h.finish_sessions()
    codes = [code for code, _ in h.keyboard.events]
    assert ecodes.KEY_ESC not in codes, "the cancel key does not reach applications"
    # The user's Shift is the last press (the typer's own Shift for "K" comes earlier).
    shift = max(i for i, e in enumerate(h.keyboard.events) if e == (ecodes.KEY_LEFTSHIFT, 1))
    assert decode(US.keymap, h.keyboard.events[:shift]) == "Kept."
    assert codes[shift + 1 :] == [ecodes.KEY_LEFTSHIFT], "nothing typed after the cancel"
    assert h.client.streams[0].cancelled and not h.client.streams[0].finished
    assert "dictation cancelled: 7 characters not typed" in caplog.text
    assert h.keyboard.held() == frozenset()
    h.key(ecodes.KEY_ESC, 1, 3.0)  # idle again: Escape is an ordinary key
    assert h.keyboard.events[-1] == (ecodes.KEY_ESC, 1)


def test_a_cancel_never_waits_for_a_stalled_daemon() -> None:
    """Escape is handled on the main loop, which passes grabbed keys on: telling the
    daemon (which waits for the stream's socket, up to its 120 s timeout when the daemon
    stalls) happens on another thread, so the keyboard never freezes."""
    from whisperd.keys.session import Session

    class StalledStream:
        def __init__(self) -> None:
            self.told = threading.Event()
            self.unstall = threading.Event()

        def cancel(self) -> None:
            self.unstall.wait(10)
            self.told.set()

    h = Harness(FakeClient("text"))
    session = Session(h.service, 0.0)
    stream = StalledStream()
    session._stream = stream  # type: ignore[assignment]
    returned = threading.Event()
    threading.Thread(target=lambda: (session.cancel(), returned.set()), daemon=True).start()
    assert returned.wait(2), "the cancel waited for the daemon"
    assert session.cancelled.is_set() and not stream.told.is_set()
    stream.unstall.set()
    assert stream.told.wait(2)


def test_two_dictations_ending_together_leave_escape_an_ordinary_key() -> None:
    """Each ending session is still in its thread when it says so: two ending at the same
    moment each saw the other alive, and Escape stayed a cancel (swallowed) with no
    dictation left."""

    class Ending:  # a session inside its last step: alive, its work done
        finished = True

        def is_alive(self) -> bool:
            return True

    h = Harness(FakeClient("text"))
    first, second = Ending(), Ending()
    h.service.sessions = [first, second]  # type: ignore[list-item]
    h.service.session_ended(first)  # type: ignore[arg-type]
    h.service.session_ended(second)  # type: ignore[arg-type]
    h.key(ecodes.KEY_ESC, 1, 1.0)
    assert h.keyboard.events[-1] == (ecodes.KEY_ESC, 1)


def test_escape_after_release_stops_text_waiting_for_modifiers() -> None:
    h = Harness(FakeClient("waiting text"), live=True)
    h.key(ecodes.KEY_LEFTCTRL, 1, 0.0)
    h.key(ecodes.KEY_INSERT, 1, 0.1)
    h.key(ecodes.KEY_INSERT, 0, 1.0)
    session = h.service.sessions[0]
    session.join(0.3)
    assert session.is_alive(), "Ctrl held: the text waits"
    h.key(ecodes.KEY_ESC, 1, 1.5)
    h.finish_sessions()
    h.key(ecodes.KEY_LEFTCTRL, 0, 2.0)
    assert h.keyboard.events == [(ecodes.KEY_LEFTCTRL, 1), (ecodes.KEY_LEFTCTRL, 0)]
