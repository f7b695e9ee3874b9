"""Packed short clips against one ``transcribe`` per clip: real model (bundled tiny.en,
int8, CPU) and reproducible espeak-ng speech (sox without dither)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bench.packing import transcribe_clips, transcribe_single
from tests.conftest import espeak
from tests.integration.support import SENTENCES, wer, words
from whisperd.audio import decode_file
from whisperd.config import DaemonConfig
from whisperd.engine import Engine, Transcription, packing, resolve_model

pytestmark = pytest.mark.slow

COUNT = 8  # two windows of four clips: both the packing and a window boundary are exercised


@pytest.fixture(scope="module")
def model() -> Any:
    fw = pytest.importorskip("faster_whisper")
    return fw.WhisperModel(
        resolve_model(None).path, device="cpu", compute_type="int8", cpu_threads=2
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    folder = tmp_path_factory.mktemp("packing")
    speeds = (150, 170)  # two speeds, so the clips differ in length
    return [
        decode_file(espeak(text, folder / f"c{i}.wav", speed=speeds[i % 2]).read_bytes())
        for i, (text, _) in enumerate(SENTENCES[:COUNT])
    ]


@pytest.fixture(scope="module")
def per_file(model: Any, clips: list[np.ndarray]) -> list[Transcription]:
    return [transcribe_single(model, audio, beam_size=5) for audio in clips]


def foreign_words(index: int, text: str) -> set[str]:
    """Key words of the other sentences that are not in this clip's own sentence."""
    own = set(words(SENTENCES[index][0]))
    others = {w for j, (_, keys) in enumerate(SENTENCES[:COUNT]) if j != index for w in keys}
    return (set(words(text)) & others) - own


def nearest_sentence(text: str) -> int:
    """The index of the sentence this text is nearest to (word error rate)."""
    rates = [wer(sentence, text) for sentence, _ in SENTENCES[:COUNT]]
    return rates.index(min(rates))


def test_packed_matches_per_file_with_fewer_calls(
    model: Any, clips: list[np.ndarray], per_file: list[Transcription]
) -> None:
    packed, outcome = transcribe_clips(model, clips, beam_size=5)
    assert len(packed) == COUNT
    assert outcome.model_calls < COUNT // 2, outcome
    packed_wer = sum(wer(SENTENCES[i][0], r.text) for i, r in enumerate(packed))
    single_wer = sum(wer(SENTENCES[i][0], r.text) for i, r in enumerate(per_file))
    assert packed_wer <= single_wer + 1e-9, (
        [r.text for r in packed],
        [r.text for r in per_file],
    )
    for i, result in enumerate(packed):
        # In order: each text is nearer its own sentence than any other ...
        assert nearest_sentence(result.text) == i, (i, result.text)
        # ... and holds none of another clip's key words.
        assert not foreign_words(i, result.text), (i, result.text)
        assert result.language == "en"
        assert result.duration == pytest.approx(clips[i].size / 16000)


def test_segment_times_are_in_each_clips_own_timeline(
    model: Any, clips: list[np.ndarray], per_file: list[Transcription]
) -> None:
    outcome = packing.transcribe_packed(model, clips, beam_size=5)
    for i, result in enumerate(outcome.results):
        if result is None:
            continue  # left to the caller: nothing to compare
        assert result.segments, i
        duration = clips[i].size / 16000
        for segment in result.segments:
            assert 0.0 <= segment["start"] <= segment["end"] <= duration + 1e-6, (i, segment)
        # Whisper's timestamps wobble by up to a second (whole-second rounding).
        reference = per_file[i].segments
        assert abs(result.segments[0]["start"] - reference[0]["start"]) <= 1.0
        assert abs(result.segments[-1]["end"] - reference[-1]["end"]) <= 1.0


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = Engine(DaemonConfig())
    yield engine
    engine.unload()


def test_engine_transcribe_many_keeps_order_and_prefilters(
    engine: Engine, clips: list[np.ndarray], per_file: list[Transcription]
) -> None:
    silent = np.zeros(16000, np.float32)
    too_short = clips[0][:800]  # 50 ms
    audios = [clips[0], silent, clips[1], too_short, clips[2], clips[3]]
    results = engine.transcribe_many(audios, {})
    assert [r.skipped for r in results] == [None, "silent", None, "too_short", None, None]
    spoken = [results[0], results[2], results[4], results[5]]
    for i, result in enumerate(spoken):
        assert result.path in ("packed", "standard"), result
        assert nearest_sentence(result.text) == i, (i, result.text)
        assert not foreign_words(i, result.text), (i, result.text)
    assert any(r.path == "packed" for r in spoken)
    assert [r.to_message()["duration"] for r in results] == [
        round(a.size / 16000, 3) for a in audios
    ]


def test_engine_transcribe_many_with_one_clip_is_the_regular_path(
    engine: Engine, clips: list[np.ndarray], per_file: list[Transcription]
) -> None:
    (result,) = engine.transcribe_many([clips[0]], {})
    assert result.path == "standard"
    assert result.text == per_file[0].text
