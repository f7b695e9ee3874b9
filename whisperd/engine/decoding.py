"""faster-whisper's decoding loop, re-implemented for windows shorter than 30 s.

These are the parts of faster-whisper 1.2.1's ``WhisperModel`` that the fast path needs
(``get_suppressed_tokens``, ``get_prompt``, ``_split_segments_by_timestamps`` and
``generate_with_fallback``), with the same options and results, so that an unpadded
window is decoded exactly as the regular path decodes a padded one
(``tests/unit/test_fastpath.py`` checks them against faster-whisper's own).
``generate_with_fallback`` adds the fast path's first line of the quality guard.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Same constants as faster_whisper.transcribe.WhisperModel (1.2.1).
MAX_LENGTH = 448
TIME_PRECISION = 0.02
INPUT_STRIDE = 2


def ct2_start_step(prompt: Sequence[int], sot: int, no_timestamps: int) -> int:
    """The step CTranslate2's Whisper decoding starts at for ``prompt``: it feeds the
    tokens before the last one of the start sequence (previous text, <|startoftranscript|>,
    language, task, <|notimestamps|>) in one pass, and forces the rest (a first timestamp,
    a prefix) step by step (``WhisperReplica::generate`` in src/models/whisper.cc)."""
    index = list(prompt).index(sot)
    while index < len(prompt) and sot <= prompt[index] <= no_timestamps:
        index += 1
    return index - 1


def ct2_max_length(new_tokens: int, start_step: int) -> int:
    """The ``max_length`` to ask CTranslate2's Whisper ``generate`` for so that it stops
    after ``new_tokens`` output tokens (the forced ones included). It does not stop at
    ``max_length - len(prompt)``: it decodes at most ``min(max_length // 2, max_length -
    start_step)`` steps (whisper.cc), so a budget asked as ``len(prompt) + budget`` ended
    every decode at half the budget, where the guard never saw it hit: a long utterance
    on the fast path came out cut short instead of going to the 30 s window."""
    return max(2 * new_tokens, new_tokens + start_step)


@dataclass(frozen=True)
class Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float


def compression_ratio_of(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def suppressed_tokens(tokenizer: Any, suppress_tokens: Sequence[int] | None) -> list[int]:
    """Same expansion as faster_whisper.transcribe.getsuppressed_tokens."""
    if not suppress_tokens:
        # faster-whisper passes an empty/None list through untouched.
        return []
    tokens: list[int]
    if -1 in suppress_tokens:
        tokens = [t for t in suppress_tokens if t >= 0]
        tokens.extend(int(t) for t in tokenizer.non_speech_tokens)
    else:
        tokens = list(suppress_tokens)
    tokens.extend(
        [
            int(tokenizer.transcribe),
            int(tokenizer.translate),
            int(tokenizer.sot),
            int(tokenizer.sot_prev),
            int(tokenizer.sot_lm),
            int(tokenizer.no_speech),
        ]
    )
    return sorted(set(tokens))


def build_prompt(
    tokenizer: Any,
    previous_tokens: list[int],
    *,
    without_timestamps: bool,
    hotwords: str | None,
    prefix: str | None = None,
) -> list[int]:
    """Same as WhisperModel.get_prompt."""
    prompt: list[int] = []
    if prefix:
        hotwords = None  # faster-whisper drops the hotwords when a prefix is forced
    if previous_tokens or hotwords:
        prompt.append(int(tokenizer.sot_prev))
        if hotwords:
            prompt.extend(_encoded_within_half(tokenizer, hotwords))
        if previous_tokens:
            prompt.extend(previous_tokens[-(MAX_LENGTH // 2 - 1) :])
    prompt.extend(int(t) for t in tokenizer.sot_sequence)
    if without_timestamps:
        prompt.append(int(tokenizer.no_timestamps))
    if prefix:
        if not without_timestamps:
            prompt.append(int(tokenizer.timestamp_begin))
        prompt.extend(_encoded_within_half(tokenizer, prefix))
    return prompt


def _encoded_within_half(tokenizer: Any, text: str) -> list[int]:
    """``text``'s tokens, cut below half the context as faster-whisper cuts the hotwords
    and the prefix (``get_prompt``)."""
    tokens = [int(t) for t in tokenizer.encode(" " + text.strip())]
    return tokens if len(tokens) < MAX_LENGTH // 2 else tokens[: MAX_LENGTH // 2 - 1]


def split_by_timestamps(
    tokenizer: Any,
    tokens: list[int],
    *,
    time_offset: float,
    segment_size: int,
    segment_duration: float,
    seek: int,
) -> tuple[list[tuple[float, float, list[int]]], int]:
    """Same as WhisperModel._split_segments_by_timestamps; returns (segments, new seek)."""
    ts_begin = int(tokenizer.timestamp_begin)
    segments: list[tuple[float, float, list[int]]] = []
    single_timestamp_ending = len(tokens) >= 2 and tokens[-2] < ts_begin <= tokens[-1]
    consecutive = [
        i
        for i in range(len(tokens))
        if i > 0 and tokens[i] >= ts_begin and tokens[i - 1] >= ts_begin
    ]
    if consecutive:
        slices = list(consecutive)
        if single_timestamp_ending:
            slices.append(len(tokens))
        last_slice = 0
        for current in slices:
            sliced = tokens[last_slice:current]
            start = time_offset + (sliced[0] - ts_begin) * TIME_PRECISION
            end = time_offset + (sliced[-1] - ts_begin) * TIME_PRECISION
            segments.append((start, end, sliced))
            last_slice = current
        if single_timestamp_ending:
            seek += segment_size
        else:
            seek += (tokens[last_slice - 1] - ts_begin) * INPUT_STRIDE
    else:
        duration = segment_duration
        stamps = [t for t in tokens if t >= ts_begin]
        if stamps and stamps[-1] != ts_begin:
            duration = (stamps[-1] - ts_begin) * TIME_PRECISION
        segments.append((time_offset, time_offset + duration, tokens))
        seek += segment_size
    return segments, seek


def generate_with_fallback(
    ct2_model: Any,
    tokenizer: Any,
    encoder_output: Any,
    prompt: list[int],
    *,
    temperatures: Sequence[float],
    beam_size: int,
    best_of: int,
    patience: float,
    length_penalty: float,
    repetition_penalty: float,
    no_repeat_ngram_size: int,
    suppress_blank: bool,
    suppress_tokens: list[int],
    max_initial_timestamp: float,
    max_new_tokens: int | None,
    compression_ratio_threshold: float | None,
    log_prob_threshold: float | None,
    no_speech_threshold: float | None,
    quality_guard: bool,
    token_budget: int | None,
) -> Decoded | None:
    """Same as WhisperModel.generate_with_fallback, plus the fast path's quality guard.

    With ``quality_guard`` the first (temperature 0) decode must pass faster-whisper's own
    fallback tests (compression ratio, average log-probability, unless it is silence) and
    stay within ``token_budget`` new tokens; otherwise ``None`` is returned so that the
    caller re-runs the utterance on the regular padded 30 s window instead of sampling
    at higher temperatures on the short window.
    """
    max_initial_timestamp_index = int(round(max_initial_timestamp / TIME_PRECISION))
    max_length = MAX_LENGTH if max_new_tokens is None else len(prompt) + max_new_tokens
    if max_length > MAX_LENGTH:
        raise ValueError(
            f"prompt ({len(prompt)} tokens) + max_new_tokens exceeds {MAX_LENGTH} tokens"
        )
    budget_hit_length: int | None = None
    start_step = ct2_start_step(prompt, int(tokenizer.sot), int(tokenizer.no_timestamps))
    if quality_guard and token_budget is not None:
        budget_length = ct2_max_length(token_budget, start_step)
        if budget_length < max_length:
            max_length = budget_length
            budget_hit_length = token_budget
        elif max_new_tokens is None:
            # A long window's budget is past what Whisper may decode at all: a decode
            # that fills it was cut there, and the 30 s window goes on where it stopped.
            budget_hit_length = min(max_length // 2, max_length - start_step)
    all_results: list[Decoded] = []
    below_cr: list[Decoded] = []
    temperature = 0.0
    for temperature in temperatures:
        kwargs: dict[str, Any]
        if temperature > 0:
            kwargs = {
                "beam_size": 1,
                "num_hypotheses": best_of,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
        else:
            kwargs = {"beam_size": beam_size, "patience": patience}
        result = ct2_model.generate(
            encoder_output,
            [prompt],
            length_penalty=length_penalty,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=suppress_blank,
            suppress_tokens=suppress_tokens,
            max_initial_timestamp_index=max_initial_timestamp_index,
            **kwargs,
        )[0]
        tokens = [int(t) for t in result.sequences_ids[0]]
        seq_len = len(tokens)
        cum_logprob = float(result.scores[0]) * (seq_len**length_penalty)
        avg_logprob = cum_logprob / (seq_len + 1)
        text = str(tokenizer.decode(tokens)).strip()
        cr = compression_ratio_of(text)
        no_speech_prob = float(result.no_speech_prob)
        decoded = Decoded(tokens, avg_logprob, no_speech_prob, temperature, cr)
        all_results.append(decoded)

        needs_fallback = False
        if compression_ratio_threshold is not None:
            if cr > compression_ratio_threshold:
                needs_fallback = True  # too repetitive
            else:
                below_cr.append(decoded)
        if log_prob_threshold is not None and avg_logprob < log_prob_threshold:
            needs_fallback = True  # average log probability too low
        if (
            no_speech_threshold is not None
            and no_speech_prob > no_speech_threshold
            and log_prob_threshold is not None
            and avg_logprob < log_prob_threshold
        ):
            needs_fallback = False  # silence
        if quality_guard and budget_hit_length is not None and seq_len >= budget_hit_length:
            return None  # runaway decode (repetition loop) on the short window
        if not needs_fallback:
            return decoded
        if quality_guard:
            return None
    best = max(below_cr or all_results, key=lambda d: d.avg_logprob)
    # faster-whisper reports the last temperature tried (for prompt_reset_on_temperature)
    return Decoded(
        best.tokens, best.avg_logprob, best.no_speech_prob, temperature, best.compression_ratio
    )
