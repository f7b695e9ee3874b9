"""Live dictation through whisperd-keys' service against a real whisperd (issue 12).

Only the hardware is doubled: key events, a microphone that delivers an utterance with
pauses at real-time pace, and a virtual keyboard that records what it is told to type
with the time. The daemon, the live protocol, the model, the joiner and the typer are
real. Texts are compared between two paths of the same run, never pinned.
"""

from __future__ import annotations

import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evdev import ecodes

from tests.conftest import RunningDaemon, espeak, words
from tests.integration.support import SENTENCES
from tests.unit.keys.keys_fakes import ReplaySource
from whisperd.client import Client
from whisperd.keys.audio import QueueCapture
from whisperd.keys.config import KeysConfig
from whisperd.keys.layout import CharMap, LayoutName, decode
from whisperd.keys.livetype import join_pieces
from whisperd.keys.service import DictationService
from whisperd.keys.trigger import KeyEvent, Mode, TriggerMachine
from whisperd.keys.typer import Typer
from whisperd.keys.virtual import RecordingKeyboard

pytestmark = pytest.mark.slow
DEV = "/dev/input/event3"
RATE = 16000
US = CharMap.for_layout(LayoutName("us"))


def speech(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(audio) > 300)
    return audio[loud[0] : loud[-1] + 1]


def dictation(folder: Path, indices: list[int], pauses: list[float]) -> np.ndarray:
    """Sentences with the given pauses between them (quiet room noise), released 50 ms
    after the last word."""
    rng = np.random.default_rng(7)
    parts: list[np.ndarray] = [rng.normal(0, 30, RATE // 5).astype(np.int16)]
    for n, index in enumerate(indices):
        parts.append(speech(espeak(SENTENCES[index][0], folder / f"k{index}.wav", speed=150)))
        gap = pauses[n] if n < len(indices) - 1 else 0.05
        parts.append(rng.normal(0, 30, int(gap * RATE)).astype(np.int16))
    return np.concatenate(parts)


class TimedKeyboard(RecordingKeyboard):
    """Remembers when each key event was written."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def _write(self, code: int, value: int) -> None:
        super()._write(code, value)
        self.times.append(time.monotonic())


class RealTimeRecorder:
    """Delivers the utterance 20 ms at a time, at the pace it was spoken."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.sample_rate = RATE
        self.spoken = threading.Event()

    def begin(self) -> QueueCapture:
        capture = QueueCapture(RATE)

        def produce() -> None:
            block = RATE // 50 * 2
            start = time.monotonic()
            for index, offset in enumerate(range(0, len(self.pcm), block)):
                if capture.stopped:
                    return
                time.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
                capture.push(self.pcm[offset : offset + block])
            self.spoken.set()

        threading.Thread(target=produce, daemon=True).start()
        return capture

    def close(self) -> None:
        pass


class SpyClient:
    """The real client; keeps the commit events and the result for the comparison."""

    def __init__(self, real: Client, seen: dict[str, Any]) -> None:
        self.real = real
        self.seen = seen

    def start_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.start_stream(*args, **kwargs)

    def start_live(self, on_commit: Callable[[dict[str, Any]], None], **kwargs: Any) -> Any:
        def spy(event: dict[str, Any]) -> None:
            self.seen.setdefault("commits", []).append((time.monotonic(), event))
            on_commit(event)

        stream = self.real.start_live(spy, **kwargs)
        finish = stream.finish

        def finished(*args: Any) -> dict[str, Any]:
            self.seen["result"] = finish(*args)
            return self.seen["result"]

        stream.finish = finished  # type: ignore[method-assign]
        return stream

    def close(self) -> None:
        self.real.close()


@pytest.fixture()
def live_chain(daemon: RunningDaemon) -> Iterator[tuple[DictationService, TimedKeyboard, dict]]:
    config = KeysConfig(language="en", socket_path=str(daemon.socket_path))
    assert config.live, "live typing is the default"
    keyboard = TimedKeyboard()
    seen: dict[str, Any] = {}

    def factory() -> SpyClient:
        return SpyClient(
            Client.connect(socket_path=config.socket_path, timeout=300, autostart=False), seen
        )

    service = DictationService(
        TriggerMachine(combo=(ecodes.KEY_INSERT,), mode=Mode.HOLD),
        ReplaySource(),
        RealTimeRecorder(b""),
        keyboard,
        Typer(keyboard, US),  # the real per-key delay
        factory,  # type: ignore[arg-type]
        config,
    )
    yield service, keyboard, seen
    service.shutdown()


def test_pieces_are_typed_during_the_hold_and_make_the_result(
    live_chain: tuple[DictationService, TimedKeyboard, dict], tmp_path: Path
) -> None:
    service, keyboard, seen = live_chain
    recorder = service.recorder
    assert isinstance(recorder, RealTimeRecorder)
    # whisperd commits a piece once the next pause confirms it, or after a 2 s pause
    # (docs/protocol.md): the long first pause makes the first sentence final early.
    audio = dictation(tmp_path, [0, 1, 2], pauses=[2.5, 1.0])
    recorder.pcm = audio.astype("<i2").tobytes()
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 1, time.monotonic())])
    assert recorder.spoken.wait(60)
    released = time.monotonic()
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 0, released)])
    session = service.sessions[0]
    session.join(300)
    assert not session.is_alive()

    typed = decode(US.keymap, keyboard.events)
    before_release = decode(
        US.keymap, [e for e, t in zip(keyboard.events, keyboard.times, strict=True) if t < released]
    )
    assert before_release, "nothing was typed while the key was held"
    assert set(words(SENTENCES[0][0])) & set(words(before_release)), before_release
    assert typed.startswith(before_release)
    pieces = [str(event["text"]) for _, event in seen["commits"]]
    assert typed == join_pieces(pieces)
    assert words(typed) == words(seen["result"]["text"]), (typed, seen["result"]["text"])
    assert keyboard.held() == frozenset()


def test_live_silence_types_nothing(
    live_chain: tuple[DictationService, TimedKeyboard, dict],
) -> None:
    service, keyboard, seen = live_chain
    recorder = service.recorder
    assert isinstance(recorder, RealTimeRecorder)
    recorder.pcm = b"\x00\x00" * RATE * 2
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 1, time.monotonic())])
    assert recorder.spoken.wait(60)
    service.step([KeyEvent(DEV, ecodes.KEY_INSERT, 0, time.monotonic())])
    service.sessions[0].join(300)
    assert keyboard.events == []
