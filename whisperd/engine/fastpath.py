"""Unpadded-window fast path for short utterances.

Whisper pads every input to a 30 s window (3000 log-mel frames) and the encoder pays for
all of it: a 3 s dictation costs as much encoder time as a 30 s one. CTranslate2's
Whisper encoder accepts shorter feature arrays, so for a short utterance we encode only
the speech plus a little zero padding and decode from that, with faster-whisper's own
decoding loop re-implemented in ``decoding.py`` and the same options.

Quality was validated on real recordings and a large espeak-ng set (``docs/fastpath.md``,
``bench/fastpath_validate.py``). :func:`transcribe_unpadded` returns ``None`` for audio
outside the validated range or output the quality guard (``guard.py``) doubts; the
caller then uses faster-whisper's regular ``model.transcribe``.

Thread-safety: no state is kept between calls (a Tokenizer is built per call); the daemon
calls it from its single worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from whisperd.engine import guard
from whisperd.engine.decoding import (
    Decoded,
    build_prompt,
    generate_with_fallback,
    split_by_timestamps,
    suppressed_tokens,
)
from whisperd.engine.samples import SAMPLE_RATE, duration_of

if TYPE_CHECKING:
    from whisperd.engine.model import FastPathModel
    from whisperd.engine.samples import Samples

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_MAX_TOKENS_PER_SECOND",
    "DEFAULT_MIN_SECONDS",
    "DEFAULT_MIN_WINDOW_SECONDS",
    "DEFAULT_PAD_SECONDS",
    "DEFAULT_TEMPERATURES",
    "FastResult",
    "FastSegment",
    "is_eligible",
    "transcribe_unpadded",
]

# Whisper's full window: 30 s = 3000 mel frames (hop 160 samples at 16 kHz).
FULL_WINDOW_FRAMES = 3000

# Validated defaults (see docs/fastpath.md for the measurements behind them).
DEFAULT_PAD_SECONDS = 2.0
"""Zero (silence) frames appended after the speech before encoding."""
DEFAULT_MIN_WINDOW_SECONDS = 10.0
"""The encoded window is never shorter than this (short clips get more padding)."""
DEFAULT_MIN_SECONDS = 1.0
"""Audio shorter than this is not eligible (fall back to the regular path)."""
DEFAULT_MAX_SECONDS = 30.0
"""Audio longer than one Whisper window is not eligible."""
DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
DEFAULT_MAX_TOKENS_PER_SECOND = 10.0
"""Token budget of a fast-path window (plus 20); reaching it means a runaway decode."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastSegment:
    """One decoded segment (times in seconds from the start of ``audio``)."""

    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float


@dataclass(frozen=True)
class FastResult:
    """Result of :func:`transcribe_unpadded`.

    ``text`` is the concatenation of the segment texts, exactly like joining the
    ``Segment.text`` values of faster-whisper's ``transcribe`` (leading space included;
    strip it if you need to).  ``window_frames`` lists the encoder window length (mel
    frames) of every decoding window, for logging/benchmarks.
    """

    segments: tuple[FastSegment, ...]
    text: str
    language: str
    duration: float
    window_frames: tuple[int, ...]


def is_eligible(
    num_samples: int,
    *,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    sample_rate: int = SAMPLE_RATE,
) -> bool:
    """Whether audio of ``num_samples`` samples may take the fast path."""
    seconds = num_samples / sample_rate
    return min_seconds <= seconds <= min(max_seconds, DEFAULT_MAX_SECONDS)


def transcribe_unpadded(
    model: FastPathModel,
    audio: Samples,
    *,
    beam_size: int = 5,
    language: str | None = None,
    without_timestamps: bool = False,
    initial_prompt: str | None = None,
    hotwords: str | None = None,
    prefix: str | None = None,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    pad_seconds: float = DEFAULT_PAD_SECONDS,
    min_window_seconds: float = DEFAULT_MIN_WINDOW_SECONDS,
    temperature: float | Sequence[float] = DEFAULT_TEMPERATURES,
    best_of: int = 5,
    patience: float = 1.0,
    length_penalty: float = 1.0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    compression_ratio_threshold: float | None = 2.4,
    log_prob_threshold: float | None = -1.0,
    no_speech_threshold: float | None = 0.6,
    silence_no_speech_prob: float | None = None,
    condition_on_previous_text: bool = True,
    prompt_reset_on_temperature: float = 0.5,
    suppress_blank: bool = True,
    suppress_tokens: Sequence[int] | None = (-1,),
    max_initial_timestamp: float = 1.0,
    max_new_tokens: int | None = None,
    quality_guard: bool = True,
    max_tokens_per_second: float | None = DEFAULT_MAX_TOKENS_PER_SECOND,
) -> FastResult | None:
    """Transcribe ``audio`` encoding only the speech plus ``pad_seconds`` of padding.

    ``audio`` is float32, 16 kHz, mono (already VAD-trimmed by the caller; no VAD is
    run here).  Decoding options have faster-whisper 1.2.1 ``transcribe`` defaults and
    meanings (``prefix`` is forced at the start of the first window, as there); word
    timestamps, clip timestamps and ``hallucination_silence_threshold`` are not supported
    (use the regular path).

    Returns ``None`` when the audio is not eligible -- shorter than ``min_seconds``,
    longer than ``max_seconds`` (never more than 30 s), or a multilingual model with
    ``language=None`` (language detection needs the regular path) -- and the caller
    should then call ``model.transcribe`` with the same options.

    With ``quality_guard`` (the default) it also returns ``None`` when the output looks
    like a short-window failure, so the regular path decodes the utterance on the 30 s
    window (with its own temperature fallback):

    * the temperature-0 decode fails faster-whisper's own fallback tests (compression
      ratio > ``compression_ratio_threshold``, or average log-probability <
      ``log_prob_threshold`` without being silence), or produces more than
      ``20 + max_tokens_per_second * window_seconds`` tokens;
    * a timestamped segment starts after the end of the speech (the decoder running on
      into the padding);
    * the text repeats itself ("a b a b", or one word three times in a row), or has
      more than ``2 + 6 words/s`` of audio.

    The no-speech guard is faster-whisper's (a window is dropped when ``no_speech_prob >
    no_speech_threshold`` and ``avg_logprob <= log_prob_threshold``), so the output
    matches the regular path; ``silence_no_speech_prob`` (e.g. 0.9, default off) also
    drops windows whose no-speech probability alone exceeds it.

    Each window is encoded as ``max(speech + pad_seconds, min_window_seconds)``, capped
    at 30 s, with zero log-mel frames as padding (the same padding value faster-whisper
    uses for its 30 s window).
    """
    if audio.ndim != 1:
        raise ValueError("audio must be a 1-D mono array")
    if pad_seconds < 0 or min_window_seconds < 0:
        raise ValueError("pad_seconds and min_window_seconds must be >= 0")
    if not is_eligible(audio.shape[0], min_seconds=min_seconds, max_seconds=max_seconds):
        return None

    from faster_whisper.tokenizer import Tokenizer  # deferred: heavy import

    ct2_model: Any = model.model
    multilingual = bool(ct2_model.is_multilingual)
    if language is None:
        if multilingual:
            return None
        language = "en"
    elif not multilingual:
        language = "en"

    extractor: Any = model.feature_extractor
    # The regular path calls the extractor with the whole (<= 30 s) audio too, so the
    # log-mel normalisation (max - 8 dB clamp) is identical.
    features = np.asarray(extractor(audio.astype(np.float32, copy=False)), dtype=np.float32)
    content_frames = features.shape[-1] - 1
    time_per_frame = float(extractor.time_per_frame)
    frames_per_second = int(extractor.sampling_rate // extractor.hop_length)
    pad_frames = int(round(pad_seconds * frames_per_second))
    min_window = int(round(min_window_seconds * frames_per_second))
    full_window = int(extractor.nb_max_frames)

    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
    suppress = suppressed_tokens(tokenizer, suppress_tokens)
    temperatures = (
        tuple(temperature) if isinstance(temperature, Sequence) else (float(temperature),)
    )

    all_tokens: list[int] = []
    prompt_reset_since = 0
    if initial_prompt is not None:
        all_tokens.extend(tokenizer.encode(" " + initial_prompt.strip()))

    audio_seconds = duration_of(audio.shape[0])
    segments: list[FastSegment] = []
    windows: list[int] = []
    seek = 0
    while seek < content_frames:
        time_offset = seek * time_per_frame
        segment_size = min(full_window, content_frames - seek)
        segment_duration = segment_size * time_per_frame
        window = min(full_window, max(segment_size + pad_frames, min_window))
        windows.append(window)
        encoder_output = _encode(ct2_model, features[:, seek : seek + segment_size], window)
        budget = (
            None
            if max_tokens_per_second is None
            else 20 + int(max_tokens_per_second * window * time_per_frame)
        )
        prompt = build_prompt(
            tokenizer,
            all_tokens[prompt_reset_since:],
            without_timestamps=without_timestamps,
            hotwords=hotwords,
            prefix=prefix if seek == 0 else None,  # as faster-whisper: the first window
        )
        decoded = generate_with_fallback(
            ct2_model,
            tokenizer,
            encoder_output,
            prompt,
            temperatures=temperatures,
            beam_size=beam_size,
            best_of=best_of,
            patience=patience,
            length_penalty=length_penalty,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            suppress_blank=suppress_blank,
            suppress_tokens=suppress,
            max_initial_timestamp=max_initial_timestamp,
            max_new_tokens=max_new_tokens,
            compression_ratio_threshold=compression_ratio_threshold,
            log_prob_threshold=log_prob_threshold,
            no_speech_threshold=no_speech_threshold,
            quality_guard=quality_guard,
            token_budget=budget,
        )
        if decoded is None:
            _log.debug("fast path declined: temperature-0 decode failed the fallback tests")
            return None

        if _is_silence(decoded, no_speech_threshold, log_prob_threshold, silence_no_speech_prob):
            seek += segment_size
            continue

        previous_seek = seek
        pieces, seek = split_by_timestamps(
            tokenizer,
            decoded.tokens,
            time_offset=time_offset,
            segment_size=segment_size,
            segment_duration=segment_duration,
            seek=seek,
        )
        if seek <= previous_seek:  # defensive: never loop on the same window
            seek = previous_seek + segment_size
        content_end = time_offset + segment_duration
        late = guard.starts_in_padding([start for start, _, _ in pieces], content_end)
        if quality_guard and late is not None:
            _log.debug("fast path declined: %s", late)
            return None
        for start, end, tokens in pieces:
            text = str(tokenizer.decode(tokens))
            if start == end or not text.strip():
                continue
            all_tokens.extend(tokens)
            segments.append(
                FastSegment(
                    start=start,
                    # a short window's last timestamp can overshoot: not past the audio
                    end=end if window >= full_window else min(end, max(start, audio_seconds)),
                    text=text,
                    tokens=tuple(tokens),
                    avg_logprob=decoded.avg_logprob,
                    no_speech_prob=decoded.no_speech_prob,
                    temperature=decoded.temperature,
                    compression_ratio=decoded.compression_ratio,
                )
            )
        if not condition_on_previous_text or decoded.temperature > prompt_reset_on_temperature:
            prompt_reset_since = len(all_tokens)

    duration = audio_seconds
    if quality_guard:
        reason = guard.doubt("".join(s.text for s in segments), duration)
        if reason is not None:
            _log.debug("fast path declined: %s", reason)
            return None
    return FastResult(
        segments=tuple(segments),
        text="".join(s.text for s in segments),
        language=language,
        duration=duration,
        window_frames=tuple(windows),
    )


def _encode(ct2_model: Any, features: Any, window: int) -> Any:
    """Encode ``features`` (mel bins x frames) padded with zero frames to ``window``
    frames: the value faster-whisper pads its 30 s window with."""
    import ctranslate2  # deferred: heavy import

    chunk = np.zeros((features.shape[0], window), dtype=np.float32)
    chunk[:, : features.shape[1]] = features
    return ct2_model.encode(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(chunk[np.newaxis])),
        to_cpu=False,
    )


def _is_silence(
    decoded: Decoded,
    no_speech_threshold: float | None,
    log_prob_threshold: float | None,
    silence_no_speech_prob: float | None,
) -> bool:
    """Whether to drop the window's decode as silence."""
    if no_speech_threshold is not None:
        # Same no-voice guard as faster-whisper: skip the window when the model says
        # "no speech" and the decode is not confident enough to override it.
        should_skip = decoded.no_speech_prob > no_speech_threshold
        if log_prob_threshold is not None and decoded.avg_logprob > log_prob_threshold:
            should_skip = False
        if should_skip:
            return True
    # Stricter, opt-in: faster-whisper keeps e.g. " You" on digital silence
    # (no_speech_prob 0.95 but avg_logprob -0.96 > -1); this drops it.
    return silence_no_speech_prob is not None and decoded.no_speech_prob > silence_no_speech_prob
