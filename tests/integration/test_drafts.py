"""Drafts: a stream is transcribed during the user's pauses, so a release after a pause
costs no decoding. Real daemon, real model, audio sent at real-time pace as whisperd-keys
does. Texts: the draft's answer is compared with the same audio decoded without drafts (two
paths, one machine), and with the spoken sentences within a bounded number of word errors
(CPU-independent)."""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import RunningDaemon, assert_heard, espeak, start_daemon, stop_daemon, words
from whisperd.client import Client

FIRST = "Please send the invoice to the finance team today."
SECOND = "The meeting moved to Thursday afternoon."
RATE = 16000
BLOCK = 0.02  # whisperd-keys sends 20 ms blocks
MAX_WORD_ERRORS = 1  # against the spoken sentences (exact text differs between CPUs)


def samples_of(path: Path) -> np.ndarray:
    """The speech without espeak's own leading and trailing silence."""
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == RATE and wav.getnchannels() == 1
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    loud = np.flatnonzero(np.abs(audio) > 300)
    return audio[loud[0] : loud[-1] + 1]


def quiet(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(0, 30, int(seconds * RATE)).astype(np.int16)  # room noise, -60 dBFS


def dictate(daemon: RunningDaemon, audio: np.ndarray) -> dict:
    """Stream at real-time pace, as whisperd-keys does; the result."""
    pcm = audio.astype(np.int16).tobytes()
    block = int(RATE * BLOCK) * 2
    with Client.connect(str(daemon.socket_path), timeout=120, autostart=False) as client:
        client.load()
        stream = client.start_stream(RATE, 1, "s16le", {"without_timestamps": True})
        started = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), block)):
            delay = started + (index + 1) * BLOCK - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stream.send(pcm[offset : offset + block])
        return stream.finish()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    folder = tmp_path_factory.mktemp("drafts")
    first = samples_of(espeak(FIRST, folder / "first.wav"))
    second = samples_of(espeak(SECOND, folder / "second.wav"))
    return first, second


@pytest.fixture(scope="module")
def no_drafts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(
        tmp_path_factory.mktemp("nodrafts"),
        "--idle-timeout",
        "600",
        config="[daemon]\ndraft_pause = 0\n",
    )
    yield running
    stop_daemon(running)


def test_a_release_after_a_pause_answers_with_the_draft(
    daemon: RunningDaemon, no_drafts: RunningDaemon, speech: tuple[np.ndarray, np.ndarray]
) -> None:
    first, _ = speech
    audio = np.concatenate([quiet(0.2), first, quiet(1.0)])
    result = dictate(daemon, audio)
    assert result["draft"] is True
    assert result["timings"]["draft_decode"] > 0
    assert_heard(FIRST, result["text"], MAX_WORD_ERRORS)
    # the draft answers what the whole recording, decoded at release, says
    assert words(result["text"]) == words(dictate(no_drafts, audio)["text"])


def test_speech_after_the_pause_is_not_lost(
    daemon: RunningDaemon, speech: tuple[np.ndarray, np.ndarray]
) -> None:
    first, second = speech
    audio = np.concatenate([quiet(0.2), first, quiet(1.0), second, quiet(0.05)])
    result = dictate(daemon, audio)
    assert result["draft"] is False  # a draft of the first sentence was made, not used
    assert result["timings"]["draft_decode"] > 0
    assert_heard(FIRST + " " + SECOND, result["text"], MAX_WORD_ERRORS)


def test_a_soft_last_word_after_the_pause_is_not_lost(
    daemon: RunningDaemon, speech: tuple[np.ndarray, np.ndarray]
) -> None:
    first, second = speech
    softer = (second * 0.25).astype(np.int16)  # 12 dB quieter: a turned-away head
    audio = np.concatenate([quiet(0.2), first, quiet(1.0), softer, quiet(0.6)])
    result = dictate(daemon, audio)
    assert {"meeting", "thursday", "afternoon"} <= set(words(result["text"])), result["text"]


def test_drafts_can_be_turned_off(
    no_drafts: RunningDaemon, speech: tuple[np.ndarray, np.ndarray]
) -> None:
    first, _ = speech
    result = dictate(no_drafts, np.concatenate([quiet(0.2), first, quiet(1.0)]))
    assert result["draft"] is False
    assert result["timings"]["draft_decode"] == 0
    assert_heard(FIRST, result["text"], MAX_WORD_ERRORS)
