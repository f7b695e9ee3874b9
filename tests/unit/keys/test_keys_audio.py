"""The recorder against a fake sounddevice module: pre-roll, rate fallback, errors."""

from __future__ import annotations

import threading
import types
from typing import Any

import pytest

from whisperd.keys import audio
from whisperd.keys.audio import AudioUnavailable, QueueCapture, SoundDeviceRecorder, parse_device


class FakePortAudioError(Exception):
    pass


class FakeStream:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.time = 0.0  # PortAudio's stream clock; 0: a host API without one
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def feed(self, data: bytes, recorded: float | None = None) -> None:
        """A block, recorded at stream time ``recorded`` (None: a host API without it)."""
        times = None if recorded is None else types.SimpleNamespace(inputBufferAdcTime=recorded)
        self.kwargs["callback"](data, len(data) // 2, times, None)


def fake_sd(supported_rates: tuple[int, ...] = (16000,), default_rate: float = 48000.0) -> Any:
    streams: list[FakeStream] = []

    def check_input_settings(**kwargs: Any) -> None:
        if kwargs["samplerate"] not in supported_rates:
            raise FakePortAudioError("Invalid sample rate")

    def query_devices(device: Any = None, kind: str | None = None) -> Any:
        if device == "missing":
            raise ValueError("No input device matching 'missing'")
        info = {"name": "Mic", "max_input_channels": 1, "default_samplerate": default_rate}
        return info if kind else [info]

    def raw_input_stream(**kwargs: Any) -> FakeStream:
        stream = FakeStream(**kwargs)
        streams.append(stream)
        return stream

    return types.SimpleNamespace(
        PortAudioError=FakePortAudioError,
        check_input_settings=check_input_settings,
        query_devices=query_devices,
        RawInputStream=raw_input_stream,
        default=types.SimpleNamespace(device=[0, 0]),
        streams=streams,
    )


def test_parse_device() -> None:
    assert parse_device("") is None and parse_device(" 3 ") == 3 and parse_device(2) == 2
    assert parse_device("USB") == "USB"


def test_preroll_then_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = fake_sd()
    monkeypatch.setattr(audio, "import_sounddevice", lambda: sd)
    recorder = SoundDeviceRecorder(preroll=0.1)  # 1600 frames = 3200 bytes
    stream = sd.streams[0]
    assert stream.started and stream.kwargs["samplerate"] == 16000
    assert stream.kwargs["blocksize"] == 320
    for i in range(10):
        stream.feed(bytes([i]) * 640)  # 20 ms blocks
    capture = recorder.begin()
    stream.feed(b"\xaa" * 640)
    capture.stop()
    stream.feed(b"\xbb" * 640)  # after stop: back into the ring, not the capture
    chunks = []
    while (chunk := capture.read(0.01)) is not None:
        chunks.append(chunk)
    data = b"".join(chunks)
    assert data[:640] == bytes([5]) * 640, "the last 0.1 s before key-down is kept"
    assert data.endswith(b"\xaa" * 640) and b"\xbb" not in data
    assert capture.duration == pytest.approx(0.12)
    recorder.close()
    assert stream.closed


def recorder_on_fake(
    monkeypatch: pytest.MonkeyPatch, preroll: float = 0.3
) -> tuple[SoundDeviceRecorder, FakeStream]:
    """A recorder (keep_open) on a fake sounddevice, and its stream."""
    sd = fake_sd()
    monkeypatch.setattr(audio, "import_sounddevice", lambda: sd)
    return SoundDeviceRecorder(preroll=preroll), sd.streams[0]


def read_all(capture: audio.Capture, timeout: float = 0.01) -> bytes:
    """Everything until the capture ends; fails (never hangs) if it does not end."""
    chunks = []
    for _ in range(200):
        chunk = capture.read(timeout)
        if chunk is None:
            return b"".join(chunks)
        chunks.append(chunk)
    raise AssertionError("the capture never ended")


def test_the_audio_recorded_before_the_key_up_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks reach the callback after they were recorded: those recorded before the key
    went up still belong to the recording; the first recorded after it ends it, and goes
    to the next recording's pre-roll."""
    recorder, stream = recorder_on_fake(monkeypatch, preroll=0.02)
    capture = recorder.begin()
    stream.feed(b"\x01" * 640, recorded=100.00)
    stream.time = 100.05  # the key goes up
    capture.stop()
    assert capture.read(0.01) == b"\x01" * 640 and capture.read(0.01) == b""
    stream.feed(b"\x02" * 640, recorded=100.02)  # said before the key-up, delivered after
    stream.feed(b"\x03" * 640, recorded=100.04)  # holds the key-up
    stream.feed(b"\x04" * 640, recorded=100.06)  # after it: the end
    stream.feed(b"\x05" * 640, recorded=100.08)
    assert read_all(capture) == b"\x02" * 640 + b"\x03" * 640
    assert capture.duration == pytest.approx(0.06)
    after = recorder.begin()
    assert after.read(0.01) == b"\x05" * 640  # the pre-roll


def test_a_new_recording_during_the_last_ones_tail_ends_it_and_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quick re-press (or a toggle) before the last recording's tail came: the last one
    ends at once (it waited forever, and Escape could not end it) and the new one records
    (the old key-up ended it at its first block)."""
    recorder, stream = recorder_on_fake(monkeypatch, preroll=0.0)
    first = recorder.begin()
    stream.feed(b"\x01" * 640, recorded=10.00)
    stream.time = 10.05
    first.stop()
    second = recorder.begin()
    assert read_all(first) == b"\x01" * 640
    stream.feed(b"\x02" * 640, recorded=10.06)
    stream.feed(b"\x03" * 640, recorded=10.08)
    assert second.read(0.01) == b"\x02" * 640 and second.read(0.01) == b"\x03" * 640


def test_a_block_later_than_the_tail_wait_is_in_no_recording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A block recorded before the key-up but delivered after TAIL_WAIT (a very slow
    device) belongs to the recording that ended: not to the next one's pre-roll."""
    monkeypatch.setattr(audio, "TAIL_WAIT", 0.01)
    recorder, stream = recorder_on_fake(monkeypatch, preroll=0.1)
    capture = recorder.begin()
    stream.time = 20.0
    capture.stop()
    assert read_all(capture, timeout=0.1) == b""  # ended by the time-out
    stream.feed(b"\x01" * 640, recorded=19.98)  # late: the ended recording's
    stream.feed(b"\x02" * 640, recorded=20.02)
    assert recorder.begin().read(0.01) == b"\x02" * 640


def test_a_stream_that_delivers_nothing_more_ends_the_recording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audio, "TAIL_WAIT", 0.05)
    recorder, stream = recorder_on_fake(monkeypatch)
    capture = recorder.begin()
    stream.feed(b"\x01" * 640, recorded=5.0)
    stream.time = 5.1
    capture.stop()
    capture.stop()  # a cancel, then the key-up: one end
    assert read_all(capture, timeout=1.0) == b"\x01" * 640


def test_rate_fallback_and_open_per_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = fake_sd(supported_rates=(44100,), default_rate=44100.0)
    monkeypatch.setattr(audio, "import_sounddevice", lambda: sd)
    recorder = SoundDeviceRecorder(keep_open=False)
    assert recorder.sample_rate == 44100 and sd.streams == []
    capture = recorder.begin()
    assert capture.sample_rate == 44100 and sd.streams[0].started
    capture.stop()
    for _ in range(100):  # closed on a thread of its own
        if sd.streams[0].closed:
            break
        threading.Event().wait(0.01)
    assert sd.streams[0].closed


def test_a_stream_closed_late_is_not_taken_from_the_next_recording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """keep_open off: the stream is closed on a thread after each recording. When the next
    recording began first and uses it, it stays open (closing it lost all that audio)."""
    sd = fake_sd()
    monkeypatch.setattr(audio, "import_sounddevice", lambda: sd)
    late: list[Any] = []

    class LateThread:  # the closing thread, run when the test says
        def __init__(self, target: Any, daemon: bool) -> None:
            late.append(target)

        def start(self) -> None:
            pass

    monkeypatch.setattr(audio.threading, "Thread", LateThread)
    recorder = SoundDeviceRecorder(keep_open=False)
    recorder.begin().stop()
    second = recorder.begin()
    for close in late:
        close()
    stream = sd.streams[-1]
    assert not stream.closed
    stream.feed(b"\x07" * 640)
    assert second.read(0.01) == b"\x07" * 640
    second.stop()
    for close in late[1:]:
        close()
    assert stream.closed


def test_missing_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio, "import_sounddevice", lambda: fake_sd(supported_rates=()))
    with pytest.raises(AudioUnavailable, match="missing"):
        SoundDeviceRecorder(device="missing")


def test_portaudio_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_portaudio(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(AudioUnavailable, match="libportaudio2"):
        audio.import_sounddevice()


def test_queue_capture_timeout_and_end() -> None:
    capture = QueueCapture(16000)
    assert capture.read(0.01) == b""
    capture.push(b"ab")
    capture.stop()
    capture.push(b"cd")
    assert capture.read(0.01) == b"ab"
    assert capture.read(0.01) is None and capture.read(0.01) is None


def test_reopening_recorder_survives_a_missing_microphone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(audio, "_reinitialize_portaudio", lambda: None)
    attempts: list[int] = []
    sd = fake_sd()
    monkeypatch.setattr(audio, "import_sounddevice", lambda: sd)

    def factory() -> SoundDeviceRecorder:
        attempts.append(1)
        if len(attempts) < 3:
            raise AudioUnavailable("no microphone yet")
        return SoundDeviceRecorder()

    recorder = audio.ReopeningRecorder(factory)
    assert "trying again at the next recording" in caplog.text
    with pytest.raises(AudioUnavailable):
        recorder.begin()
    capture = recorder.begin()
    assert capture.sample_rate == 16000 and len(attempts) == 3
    recorder.begin().stop()
    assert len(attempts) == 3, "opened once, then kept"
    recorder.close()


def test_two_sessions_beginning_at_once_open_the_microphone_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a failure the microphone is opened at the next recording, on that session's
    thread: a second session beginning meanwhile waits for it (both opened one, and one
    stream leaked, recording on)."""
    monkeypatch.setattr(audio, "_reinitialize_portaudio", lambda: None)
    sd = fake_sd()
    monkeypatch.setattr(audio, "import_sounddevice", lambda: sd)
    opening, opened = threading.Event(), threading.Event()
    made: list[SoundDeviceRecorder] = []

    def factory() -> SoundDeviceRecorder:
        if not made and not opening.is_set():  # the first try at start-up: no microphone
            opening.set()
            raise AudioUnavailable("no microphone yet")
        opened.wait(5)  # PulseAudio takes its time
        made.append(SoundDeviceRecorder())
        return made[-1]

    recorder = audio.ReopeningRecorder(factory)
    captures: list[audio.Capture] = []
    sessions = [threading.Thread(target=lambda: captures.append(recorder.begin())) for _ in "ab"]
    for session in sessions:
        session.start()
    threading.Event().wait(0.2)  # both are beginning
    opened.set()
    for session in sessions:
        session.join(5)
    assert len(captures) == 2 and len(made) == 1 and len(sd.streams) == 1
