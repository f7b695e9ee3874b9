"""Packing short clips into shared windows: planning, assignment and time mapping, with a
fake model (the real one is in tests/integration/test_packing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.packing import transcribe_clips
from whisperd.engine import SAMPLE_RATE, Transcription, packing, speech
from whisperd.engine.packing import (
    Placement,
    Span,
    Window,
    assign_segments,
    plan_windows,
)

SR = SAMPLE_RATE


def seconds(*values: float) -> list[int]:
    return [int(v * SR) for v in values]


# --- planning -----------------------------------------------------------------------------


def test_clips_are_packed_in_order_with_gaps() -> None:
    plan = plan_windows(seconds(3, 4, 2), window_seconds=28, gap_seconds=1.5)
    assert len(plan.windows) == 1
    (window,) = plan.windows
    assert window.clips == (0, 1, 2)
    assert [(p.start_s, p.end_s) for p in window.placements] == [
        (0.0, 3.0),
        (4.5, 8.5),
        (10.0, 12.0),
    ]
    assert window.samples == 12 * SR
    assert plan.alone == () and plan.empty == ()


def test_a_window_never_exceeds_its_limit() -> None:
    plan = plan_windows(seconds(*[5.0] * 10), window_seconds=28, gap_seconds=1.5)
    assert [w.clips for w in plan.windows] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert all(w.samples <= 28 * SR for w in plan.windows)
    # 4 clips: 4 * 5 s + 3 gaps = 24.5 s; a fifth would need 31 s.
    assert plan.windows[0].samples == int(24.5 * SR)


def test_a_clip_that_fills_the_window_exactly_fits() -> None:
    plan = plan_windows(seconds(10, 16.5), window_seconds=28, gap_seconds=1.5)
    assert [w.clips for w in plan.windows] == [(0, 1)]


def test_too_long_and_empty_clips_are_not_packed_and_do_not_break_the_order() -> None:
    plan = plan_windows([SR * 3, 0, SR * 40, SR * 3], window_seconds=28, gap_seconds=1.5)
    assert plan.empty == (1,)
    assert plan.alone == (2,)
    assert [w.clips for w in plan.windows] == [(0, 3)]


def test_nothing_to_pack() -> None:
    assert plan_windows([]) == packing.Plan((), (), ())
    assert plan_windows([0, 0]).empty == (0, 1)


def test_window_audio_puts_speech_at_its_place_and_zeros_between() -> None:
    speech = [np.full(SR, 0.5, np.float32), np.full(SR // 2, -0.25, np.float32)]
    (window,) = plan_windows([s.size for s in speech], 28, 1.0).windows
    audio = packing.window_audio(window, speech)
    assert audio.dtype == np.float32 and audio.size == int(2.5 * SR)
    assert np.all(audio[:SR] == 0.5)
    assert np.all(audio[SR : 2 * SR] == 0.0)
    assert np.all(audio[2 * SR :] == -0.25)


# --- assignment ---------------------------------------------------------------------------


def three_clips() -> Window:
    """Speech at 0-3, 4.5-8.5 and 10-12 s (gap 1.5 s)."""
    return plan_windows(seconds(3, 4, 2), 28, 1.5).windows[0]


def test_segments_go_to_the_clip_they_cover() -> None:
    spans = [Span(0.0, 2.9, " One."), Span(4.6, 8.4, " Two words."), Span(10.0, 11.9, " Three.")]
    result = assign_segments(three_clips(), spans, 1.5)
    assert result.doubtful == {}
    assert {c: [s.text for s in v] for c, v in result.segments.items()} == {
        0: [" One."],
        1: [" Two words."],
        2: [" Three."],
    }


def test_a_clip_may_get_several_segments() -> None:
    spans = [Span(0, 1.5, "a b"), Span(1.5, 3.0, "c"), Span(4.5, 8.5, "d"), Span(10, 12, "e")]
    result = assign_segments(three_clips(), spans, 1.5)
    assert result.doubtful == {}
    assert [s.text for s in result.segments[0]] == ["a b", "c"]


def test_whole_second_timestamps_stay_with_their_clip() -> None:
    # tiny.en may round ends up to the next second (8.6 -> 9.0) and starts down (10.1 -> 10).
    window = plan_windows(seconds(3.1, 4.0, 2.2), 28, 1.5).windows[0]
    spans = [Span(0.0, 4.0, "one"), Span(4.0, 9.0, "two"), Span(10.0, 13.0, "three")]
    result = assign_segments(window, spans, 1.5)
    assert result.doubtful == {}


def test_a_segment_over_two_clips_makes_both_doubtful() -> None:
    spans = [Span(0.0, 6.0, "one two"), Span(6.0, 8.5, "rest"), Span(10, 12, "three")]
    result = assign_segments(three_clips(), spans, 1.5)
    assert set(result.doubtful) == {0, 1}
    assert "straddles" in result.doubtful[0]
    assert 2 not in result.doubtful


def test_a_segment_in_a_gap_makes_its_neighbours_doubtful() -> None:
    spans = [Span(0, 3, "one"), Span(3.5, 4.0, "what"), Span(4.5, 8.5, "two"), Span(10, 12, "x")]
    result = assign_segments(three_clips(), spans, 1.5)
    assert set(result.doubtful) == {0, 1}
    assert "outside" in result.doubtful[1]


def test_a_segment_after_the_last_clip_makes_the_last_clip_doubtful() -> None:
    spans = [Span(0, 3, "one"), Span(4.5, 8.5, "two"), Span(10, 12, "three"), Span(20, 22, "bye")]
    result = assign_segments(three_clips(), spans, 1.5)
    assert set(result.doubtful) == {2}


def test_a_clip_without_words_makes_its_neighbours_doubtful() -> None:
    # Clip 1's words may be hidden in clip 0's or clip 2's segment.
    spans = [Span(0, 3, "one"), Span(10, 12, "three")]
    result = assign_segments(three_clips(), spans, 1.5)
    assert set(result.doubtful) == {0, 1, 2}
    assert "no words" in result.doubtful[1]


def test_too_many_words_for_the_speech_is_doubtful() -> None:
    many = " ".join(["word"] * 30)  # 2 s of speech holds at most 2 + 12 words
    spans = [Span(0, 3, "one"), Span(4.5, 8.5, "two"), Span(10, 12, many)]
    result = assign_segments(three_clips(), spans, 1.5)
    assert set(result.doubtful) == {2}


def test_empty_segments_are_ignored() -> None:
    spans = [Span(0, 3, "one"), Span(3.2, 4.2, "  "), Span(4.5, 8.5, "two"), Span(10, 12, "x")]
    assert assign_segments(three_clips(), spans, 1.5).doubtful == {}


# --- time mapping -------------------------------------------------------------------------


def test_speech_times_map_back_through_the_vad_chunks() -> None:
    # Speech kept at 1-2 s and 3-4 s of the clip: speech 0.5 s is clip 1.5 s, 1.5 s is 3.5 s.
    chunks = ((SR, 2 * SR), (3 * SR, 4 * SR))
    assert speech.speech_to_clip_time(chunks, 0.5, False) == 1.5
    assert speech.speech_to_clip_time(chunks, 1.5, False) == 3.5
    assert speech.speech_to_clip_time(chunks, 1.0, True) == 2.0  # the end of the first chunk
    assert speech.speech_to_clip_time(chunks, 1.0, False) == 4.0 - 1.0  # start of the second
    assert speech.speech_to_clip_time((), 1.25, False) == 1.25


def test_window_times_become_clip_times() -> None:
    clip = speech.ClipSpeech(np.zeros(2 * SR, np.float32), ((SR, 2 * SR), (3 * SR, 4 * SR)), 5.0)
    placement = Placement(clip=1, start=int(10 * SR), end=int(12 * SR))
    spans = [Span(9.8, 10.9, " Hello"), Span(11.0, 12.6, " world.")]
    result = packing._clip_result(clip, placement, spans, "en", without_timestamps=False)
    # 9.8 is clamped to the speech start; 12.6 to its end (speech 2.0 s = clip 4.0 s).
    assert result.segments == [
        {"start": 1.0, "end": 1.9, "text": "Hello"},
        {"start": 3.0, "end": 4.0, "text": "world."},
    ]
    assert (result.text, result.language, result.duration, result.path) == (
        "Hello world.",
        "en",
        5.0,
        "packed",
    )
    merged = packing._clip_result(clip, placement, spans, "en", without_timestamps=True)
    assert merged.segments == [{"start": 1.0, "end": 4.0, "text": "Hello world."}]


# --- the whole flow, with a fake model ----------------------------------------------------


class FakeModel:
    """Says ``clip<k>`` for every stretch of non-zero samples, with exact timestamps, where
    sample values encode the clip (k + 1) / 100; ``merge`` joins the first two stretches
    of a window into one segment, as Whisper sometimes does."""

    def __init__(self, merge: bool = False) -> None:
        self.model = SimpleNamespace(is_multilingual=False)
        self.calls: list[dict[str, Any]] = []
        self.merge = merge

    def transcribe(self, audio: Any, **options: Any) -> tuple[Iterator[Any], Any]:
        self.calls.append({"seconds": audio.size / SR, **options})
        voiced = np.flatnonzero(audio != 0)
        runs = np.split(voiced, np.flatnonzero(np.diff(voiced) > 1) + 1) if voiced.size else []
        segments = [
            SimpleNamespace(
                start=r[0] / SR, end=(r[-1] + 1) / SR, text=f" clip{round(audio[r[0]] * 100) - 1}."
            )
            for r in runs
        ]
        if self.merge and len(segments) >= 2:
            first, second = segments[0], segments[1]
            joined = SimpleNamespace(
                start=first.start, end=second.end, text=first.text + second.text
            )
            segments = [joined, *segments[2:]]
        return iter(segments), SimpleNamespace(language="en")


def clip_audio(k: int, speech_s: float, lead_s: float = 0.5) -> np.ndarray:
    audio = np.zeros(int((speech_s + 2 * lead_s) * SR), np.float32)
    audio[int(lead_s * SR) : int((lead_s + speech_s) * SR)] = (k + 1) / 100
    return audio


def test_packed_results_come_back_in_order_in_few_calls() -> None:
    model = FakeModel()
    audios = [clip_audio(k, 3.0) for k in range(8)]
    results, outcome = transcribe_clips(model, audios, use_vad=False)
    assert [r.text for r in results] == [f"clip{k}." for k in range(8)]
    assert all(r.path == "packed" for r in results)
    assert outcome.windows == outcome.model_calls == 2  # 4 s clips, 1.5 s gaps, 28 s windows
    assert all(c["vad_filter"] is False and c["beam_size"] == 5 for c in model.calls)
    # Whole clips (no VAD): the speech starts 0.5 s into each clip.
    assert results[3].segments == [{"start": 0.5, "end": 3.5, "text": "clip3."}]
    assert results[3].duration == 4.0


def test_a_straddling_segment_sends_both_clips_to_the_fallback() -> None:
    model = FakeModel(merge=True)  # clip 0 and clip 1 in one segment
    audios = [clip_audio(k, 3.0) for k in range(3)]
    fallbacks: list[int] = []

    def single(index: int) -> Transcription:
        fallbacks.append(index)
        return Transcription(f"alone{index}", [], "en", 4.0, path="single")

    results, outcome = transcribe_clips(model, audios, use_vad=False, single=single)
    assert fallbacks == [0, 1]
    assert [r.text for r in results] == ["alone0", "alone1", "clip2."]
    assert set(outcome.doubtful) == {0, 1}
    assert outcome.model_calls == 3  # one window and two single calls
    # No clip's result holds another clip's words.
    assert all(f"clip{k}" in r.text or r.text == f"alone{k}" for k, r in enumerate(results))


def test_too_long_clips_are_left_to_the_caller() -> None:
    model = FakeModel()
    audios = [clip_audio(0, 2.0), clip_audio(1, 40.0), clip_audio(2, 2)]
    outcome = packing.transcribe_packed(model, audios, use_vad=False)
    assert outcome.alone == (1,)
    assert outcome.results[1] is None
    assert [r.text if r else None for r in outcome.results] == ["clip0.", None, "clip2."]
    assert outcome.model_calls == 1


def test_without_the_vad_a_silent_clip_is_packed_and_doubted() -> None:
    # The whole clip counts as speech; it gets no words, so it and its neighbours are
    # left to the caller (their words could have gone into its time span, or the reverse).
    model = FakeModel()
    audios = [clip_audio(0, 2.0), np.zeros(SR, np.float32), clip_audio(2, 2)]
    outcome = packing.transcribe_packed(model, audios, use_vad=False)
    assert outcome.results == [None, None, None]
    assert "no words" in outcome.doubtful[1]


def test_a_clip_without_vad_speech_is_empty_without_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = FakeModel()
    audios = [clip_audio(0, 2.0), np.zeros(SR, np.float32), clip_audio(2, 2.0)]

    def fake_vad(audio: np.ndarray, use_vad: bool = True) -> speech.ClipSpeech:
        voiced = audio[audio != 0]
        return speech.ClipSpeech(voiced.astype(np.float32), (), audio.size / SR)

    monkeypatch.setattr(packing, "find_speech", fake_vad)
    outcome = packing.transcribe_packed(model, audios)
    assert outcome.results[1] == Transcription("", [], "en", 1.0, path="no_speech")
    assert outcome.model_calls == 1
    assert [r.text if r else None for r in outcome.results] == ["clip0.", "", "clip2."]


def test_can_pack() -> None:
    english = SimpleNamespace(model=SimpleNamespace(is_multilingual=False))
    multi = SimpleNamespace(model=SimpleNamespace(is_multilingual=True))
    assert packing.can_pack(english, None)
    assert not packing.can_pack(english, None, word_timestamps=True)
    assert not packing.can_pack(multi, None)
    assert packing.can_pack(multi, "de")
