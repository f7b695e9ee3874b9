"""The engine: one model kept warm, and transcription by the best path for the request.

Nothing here knows about sockets. The daemon calls ``Engine`` from one worker thread, so
the engine itself needs no locking. faster-whisper and CTranslate2 are imported lazily so
that importing this module (e.g. from ``whisperctl doctor``) stays cheap.

Paths: short dictation may take the unpadded fast path (``fastpath.py``), several short
files may share windows (``packing.py``); everything else, and whatever those decline,
takes faster-whisper's own ``transcribe``. All of them return a ``Transcription``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from whisperd.config import DaemonConfig
from whisperd.engine.model import (
    DeviceChoice,
    ModelNotFound,
    ResolvedModel,
    choose_device,
    resolve_model,
)
from whisperd.engine.result import (
    Segment,
    SegmentCallback,
    Transcription,
    Word,
    segment,
    word,
)
from whisperd.engine.samples import SAMPLE_RATE, duration_of
from whisperd.engine.vocabulary import (
    hotwords_in_prompt,
    hotwords_of,
    newly_heard,
    plausible_entries,
    vocabulary_options,
)

if TYPE_CHECKING:
    from whisperd.engine.model import FastPathModel
    from whisperd.engine.samples import Samples

log = logging.getLogger("whisperd.engine")


class Engine:
    """One faster-whisper model, loaded on first need and kept warm."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._model: FastPathModel | None = None
        self.resolved: ResolvedModel | None = None
        self.device: DeviceChoice | None = None
        self.load_seconds: float | None = None
        # as loaded: 0 is CTranslate2's default, threads.SPLIT its default for the encoder
        # and one thread for the decoder
        self.cpu_threads: int | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> float:
        """Load the model if needed; returns the seconds this call spent loading."""
        if self._model is not None:
            return 0.0
        started = time.monotonic()
        resolved = resolve_model(self.config.model, self.config.allow_download)
        device = choose_device(self.config.device, self.config.compute_type)
        log.info(
            "loading model %s (%s: %s) on %s, compute type %s; device reason: %s",
            resolved.name,
            resolved.source,
            resolved.path,
            device.device,
            device.compute_type,
            device.reason,
        )
        from whisperd.engine.threads import load_whisper

        try:
            model, self.cpu_threads = load_whisper(
                resolved.path,
                device.device,
                device.compute_type,
                self.config.cpu_threads,
                self.config.beam_size,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelNotFound(f"cannot load model {resolved.path}: {exc}") from None
        self.resolved, self.device = resolved, device
        self.load_seconds = time.monotonic() - started
        # Last: the loop reads `loaded` and `describe()` for status while this runs on the
        # worker, and a loaded model always has its name.
        self._model = model
        log.info("model loaded in %.2f s", self.load_seconds)
        return self.load_seconds

    def unload(self) -> bool:
        was_loaded = self._model is not None
        self._model = None
        if was_loaded:
            log.info("model unloaded; its memory is released")
        return was_loaded

    def prefilter(self, audio: Samples) -> str | None:
        """Why this audio is not worth the model: too short or silent; None when it is."""
        if audio.size < self.config.min_duration * SAMPLE_RATE:
            return "too_short"
        if _rms(audio) < self.config.min_rms:
            return "silent"
        return None

    def has_speech(self, audio: Samples) -> bool:
        """Whether the VAD finds any speech in ``audio`` (no model needed)."""
        from whisperd.engine.speech import has_speech

        return has_speech(audio)

    def transcribe(
        self,
        audio: Samples,
        options: dict[str, Any],
        on_segment: SegmentCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription:
        """Transcribe 16 kHz mono audio; segment times are shifted by ``offset`` seconds.

        With a ``vocabulary``, the audio is decoded without it first and again with the
        entries that sound like something heard, if any (``vocabulary.py``).
        """
        vocabulary = options.get("vocabulary") or []
        if not vocabulary:
            return self._transcribe_once(audio, options, on_segment, cancelled, offset)
        plain = {name: value for name, value in options.items() if name != "vocabulary"}
        first = self._transcribe_once(audio, plain, None, cancelled, offset)
        return self._with_vocabulary(audio, first, vocabulary, plain, on_segment, cancelled, offset)

    def _with_vocabulary(
        self,
        audio: Samples,
        first: Transcription,
        vocabulary: list[str],
        plain: dict[str, Any],
        on_segment: SegmentCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription:
        """``first`` (decoded without the vocabulary), or the audio decoded again with the
        entries that sound like something in its new words (after a forced prefix)."""
        heard = newly_heard(first.text, plain)
        chosen = plausible_entries(heard, vocabulary)
        answer = first
        if chosen and not (cancelled is not None and cancelled()):
            log.debug("vocabulary: %d of %d entries plausible", len(chosen), len(vocabulary))
            again = {**plain, "vocabulary": chosen}
            second = self._transcribe_once(audio, again, None, cancelled, offset)
            # With a forced prefix the entries in the prompt may make the model close
            # its segment right after the prefix: then the words first heard stand
            # (decode_piece would otherwise decode the piece again, twice).
            if newly_heard(second.text, plain).strip() or not heard.strip():
                answer = second
        for item in answer.segments:
            if on_segment is not None:
                on_segment(item)
        return answer

    def _transcribe_once(
        self,
        audio: Samples,
        options: dict[str, Any],
        on_segment: SegmentCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription:
        """One decode with ``options``: hotwords from its ``vocabulary``, if any (with a
        forced prefix, the entries lead the initial prompt: ``hotwords_in_prompt``)."""
        duration = duration_of(audio.size)
        options = hotwords_in_prompt(options)
        skipped = self.prefilter(audio)
        if skipped is not None:
            return Transcription("", [], options.get("language") or "", duration, skipped)
        model = self._loaded_model()
        fast = self._transcribe_unpadded(model, audio, options, offset)
        if fast is not None:
            for item in fast.segments:
                if on_segment is not None:
                    on_segment(item)
            return fast
        segments_iter, info = model.transcribe(
            audio,
            beam_size=self._beam_size(options),
            language=self._language(options),
            vad_filter=self._use_vad(options),
            without_timestamps=bool(options.get("without_timestamps", False)),
            initial_prompt=options.get("initial_prompt"),
            # Live pieces only (set by the daemon, not a client option): the text of the
            # audio decoded again as context before the new piece (daemon/live.py).
            prefix=options.get("prefix"),
            word_timestamps=bool(options.get("word_timestamps", False)),
            **vocabulary_options(options),
        )
        with_words = bool(options.get("word_timestamps", False))
        segments: list[Segment] = []
        for decoded in segments_iter:
            if cancelled is not None and cancelled():
                break  # the client is gone: stop decoding the rest of a long file
            words = timed_words(decoded.words, offset) if with_words else None
            item = segment(decoded.start, decoded.end, decoded.text, offset, words)
            segments.append(item)
            if on_segment is not None:
                on_segment(item)
        return Transcription.of_segments(segments, info.language, duration)

    def _loaded_model(self) -> FastPathModel:
        self.load()
        assert self._model is not None
        return self._model

    def _beam_size(self, options: dict[str, Any]) -> int:
        return int(options.get("beam_size", self.config.beam_size))

    def _language(self, options: dict[str, Any]) -> str | None:
        return options.get("language") or self.config.language or None

    def _use_vad(self, options: dict[str, Any]) -> bool:
        return bool(options.get("vad_filter", self.config.vad_filter))

    def _transcribe_unpadded(
        self, model: FastPathModel, audio: Samples, options: dict[str, Any], offset: float
    ) -> Transcription | None:
        """Short utterances: encode their real length, not a 30 s window (docs/fastpath.md).

        None when the audio or the options are outside what was validated, or when the
        quality guard doubts the output; the caller then takes faster-whisper's own path.
        """
        from whisperd.engine import fastpath
        from whisperd.engine.speech import find_speech

        # On by default for streamed dictation (where latency is the point), off for files
        # (where the text must equal faster-whisper's); a request may ask either way.
        if not options.get("fast_short_audio", False) or options.get("word_timestamps"):
            return None
        if not fastpath.is_eligible(audio.size):
            return None
        # Silence cut out by the VAD, as faster-whisper's own path does; no speech at all
        # is left to the regular path, which reports it its own way.
        speech = find_speech(audio, self._use_vad(options))
        if not speech.has_speech or not fastpath.is_eligible(speech.samples.size):
            return None
        result = fastpath.transcribe_unpadded(
            model,
            speech.samples,
            beam_size=self._beam_size(options),
            language=self._language(options),
            without_timestamps=bool(options.get("without_timestamps", False)),
            initial_prompt=options.get("initial_prompt"),
            hotwords=hotwords_of(options),
            prefix=options.get("prefix"),
        )
        if result is None:
            return None
        segments = [
            segment(
                speech.to_clip_time(s.start, False),
                speech.to_clip_time(s.end, True),
                s.text,
                offset,
            )
            for s in result.segments
        ]
        return Transcription.of_segments(
            segments, result.language, duration_of(audio.size), "unpadded"
        )

    def transcribe_many(
        self, audios: list[Samples], options: dict[str, Any]
    ) -> list[Transcription]:
        """Transcribe several clips, packing short ones into shared Whisper windows
        (``packing.py``): fewer model calls, the same words, results in order.

        Each clip goes through the same prefilter as ``transcribe``. When two or more
        remain and the options allow packing, they are packed; clips the packing leaves
        out (too long, or doubtful to the quality guard) and every clip otherwise take
        ``transcribe``, exactly as a single request would.
        """
        from whisperd.engine import packing

        vocabulary = options.get("vocabulary") or []
        if vocabulary:
            # Packed without the list, then each clip again with what it plausibly said.
            plain = {name: value for name, value in options.items() if name != "vocabulary"}
            firsts = self.transcribe_many(audios, plain)
            return [
                self._with_vocabulary(audio, first, vocabulary, plain)
                for audio, first in zip(audios, firsts, strict=True)
            ]
        results: list[Transcription | None] = [None] * len(audios)
        # Clips the prefilter skips are left to `transcribe`, which reports why.
        eligible = [i for i, audio in enumerate(audios) if self.prefilter(audio) is None]
        word_timestamps = bool(options.get("word_timestamps", False))
        if len(eligible) >= 2:
            model = self._loaded_model()
            if packing.can_pack(model, self._language(options), word_timestamps):
                self._pack(model, eligible, audios, options, results)
        return [
            done if done is not None else self.transcribe(audio, options)
            for done, audio in zip(results, audios, strict=True)
        ]

    def _pack(
        self,
        model: FastPathModel,
        eligible: list[int],
        audios: list[Samples],
        options: dict[str, Any],
        results: list[Transcription | None],
    ) -> None:
        """Fill ``results`` for the eligible clips the packing could transcribe."""
        from whisperd.engine import packing

        outcome = packing.transcribe_packed(
            model,
            [audios[i] for i in eligible],
            beam_size=self._beam_size(options),
            language=self._language(options),
            initial_prompt=options.get("initial_prompt"),
            without_timestamps=bool(options.get("without_timestamps", False)),
            use_vad=self._use_vad(options),
        )
        for index, clip in zip(eligible, outcome.results, strict=True):
            results[index] = clip
        log.info(
            "packed %d clips into %d windows; %d doubtful, %d too long (transcribed alone)",
            len(eligible),
            outcome.windows,
            len(outcome.doubtful),
            len(outcome.alone),
        )
        for index, why in outcome.doubtful.items():
            log.debug("clip %d transcribed alone: %s", eligible[index], why)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.resolved.name if self.resolved else None,
            "model_path": self.resolved.path if self.resolved else None,
            "model_source": self.resolved.source if self.resolved else None,
            "device": self.device.device if self.device else None,
            "compute_type": self.device.compute_type if self.device else None,
            **self._threads(),
        }

    def _threads(self) -> dict[str, int | None]:
        """``cpu_threads`` (the encoder's) and, when the decoder runs with its own count
        (threads.SPLIT), ``decoder_threads``."""
        from whisperd.engine.threads import SPLIT

        if not self.device:
            return {"cpu_threads": None}
        if self.cpu_threads == SPLIT:
            return {"cpu_threads": 0, "decoder_threads": 1}
        return {"cpu_threads": self.cpu_threads}


def timed_words(decoded: Iterable[Any] | None, offset: float) -> list[Word]:
    """faster-whisper's ``Word``s of one segment (``word_timestamps=True``) as the
    protocol's, without the empty ones a segment may end with."""
    return [
        word(float(item.start), float(item.end), str(item.word), offset)
        for item in decoded or ()
        if str(item.word).strip()
    ]


def _rms(audio: Samples) -> float:
    """Root mean square level (in float64: a long clip's sum must not lose precision)."""
    if audio.size == 0:
        return 0.0
    import numpy as np

    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
