"""The dictation chain against a real whisperd: key events in, typed key events out.

Only the hardware is doubled (recorded key events, a microphone fed with jfk.flac, a
recording virtual keyboard); the daemon, the client, the protocol, the model and the XKB
layout are real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from evdev import ecodes

from tests.conftest import RunningDaemon, shared_audio, words
from tests.unit.keys.keys_fakes import ReplaySource
from whisperd.client import Client
from whisperd.keys.audio import QueueCapture
from whisperd.keys.config import KeysConfig
from whisperd.keys.layout import CharMap, LayoutName, decode
from whisperd.keys.service import DictationService
from whisperd.keys.trigger import KeyEvent, Mode, TriggerMachine
from whisperd.keys.typer import Typer
from whisperd.keys.virtual import RecordingKeyboard

pytestmark = pytest.mark.slow
DEV = "/dev/input/event3"


class SpeakingRecorder:
    """Delivers a recording in real time, 20 ms at a time, like the PortAudio callback."""

    def __init__(self, pcm: bytes, sample_rate: int = 16000) -> None:
        self.pcm = pcm
        self.sample_rate = sample_rate
        self.threads: list[threading.Thread] = []

    def wait_spoken(self) -> None:
        """Until the recording has been delivered whole (begin runs in the session thread)."""
        deadline = time.monotonic() + 30
        while not self.threads and time.monotonic() < deadline:
            time.sleep(0.01)
        self.threads[-1].join(30)

    def begin(self) -> QueueCapture:
        capture = QueueCapture(self.sample_rate)
        block = self.sample_rate // 50 * 2

        def produce() -> None:
            for start in range(0, len(self.pcm), block):
                if capture.stopped:
                    return
                capture.push(self.pcm[start : start + block])
                time.sleep(0.002)  # faster than real time: the test stays short

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        self.threads.append(thread)
        return capture

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def jfk_pcm() -> bytes:
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(shared_audio("jfk.flac")), sampling_rate=16000)
    return bytes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture()
def chain(
    daemon: RunningDaemon, jfk_pcm: bytes
) -> Iterator[tuple[DictationService, RecordingKeyboard]]:
    config = KeysConfig(language="en", socket_path=str(daemon.socket_path))
    keyboard = RecordingKeyboard()
    recorder = SpeakingRecorder(jfk_pcm)
    service = DictationService(
        TriggerMachine(combo=(ecodes.KEY_INSERT,), mode=Mode.HOLD),
        ReplaySource(),
        recorder,
        keyboard,
        Typer(keyboard, CharMap.for_layout(LayoutName("us")), delay=0),
        lambda: Client.connect(socket_path=config.socket_path, timeout=120, autostart=False),
        config,
    )
    yield service, keyboard
    service.shutdown()


def test_hold_speak_release_types_the_words(
    chain: tuple[DictationService, RecordingKeyboard], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    service, keyboard = chain
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 1, time.monotonic())])
    recorder = service.recorder
    assert isinstance(recorder, SpeakingRecorder)
    recorder.wait_spoken()  # the whole sentence has been "spoken"
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 0, time.monotonic())])
    session = service.sessions[0]
    session.join(120)
    assert not session.is_alive()
    typed = decode(CharMap.for_layout(LayoutName("us")).keymap, keyboard.events)
    assert "ask not what your country can do for you" in " ".join(words(typed)), typed
    assert keyboard.held() == frozenset()
    assert "typed" in caplog.text and "country" not in caplog.text


def test_silence_types_nothing(chain: tuple[DictationService, RecordingKeyboard]) -> None:
    service, keyboard = chain
    assert isinstance(service.recorder, SpeakingRecorder)
    service.recorder.pcm = b"\x00\x00" * 16000 * 2
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 1, time.monotonic())])
    service.recorder.wait_spoken()
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 0, time.monotonic())])
    service.sessions[0].join(120)
    assert keyboard.events == []
