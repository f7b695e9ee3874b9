"""Where the speech is: faster-whisper's Silero VAD, shared by every decoding path.

The regular path runs it inside ``model.transcribe(vad_filter=True)``; the fast path and
packing cut the speech out here with the same default options, decode it, and map the
times back into the clip with ``SpeechTimestampsMap``, exactly as faster-whisper does, so
the three paths see the same speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from whisperd.engine.samples import SAMPLE_RATE, duration_of

if TYPE_CHECKING:
    from whisperd.engine.samples import Samples


@dataclass(frozen=True)
class ClipSpeech:
    """One clip's speech: the VAD-kept samples and the VAD chunks (clip samples)."""

    samples: Samples
    chunks: tuple[tuple[int, int], ...]
    duration: float

    @property
    def has_speech(self) -> bool:
        return self.samples.size > 0

    def to_clip_time(self, seconds: float, is_end: bool) -> float:
        """Speech time (seconds into ``samples``) to clip time, as faster-whisper restores
        VAD-cut timestamps."""
        return speech_to_clip_time(self.chunks, seconds, is_end)


def speech_to_clip_time(chunks: Sequence[tuple[int, int]], seconds: float, is_end: bool) -> float:
    """Map a time in the concatenated speech back into the clip (``SpeechTimestampsMap``)."""
    if not chunks:
        return seconds
    from faster_whisper.vad import SpeechTimestampsMap

    mapping = SpeechTimestampsMap([{"start": s, "end": e} for s, e in chunks], SAMPLE_RATE)
    return float(mapping.get_original_time(seconds, is_end=is_end))


def find_speech(audio: Samples, use_vad: bool = True) -> ClipSpeech:
    """The clip's speech as faster-whisper's ``vad_filter`` keeps it (default VAD options);
    without the VAD, the whole clip."""
    duration = duration_of(audio.size)
    if not use_vad:
        return ClipSpeech(np.asarray(audio, dtype=np.float32), (), duration)
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    found = get_speech_timestamps(audio, VadOptions())
    if not found:
        return ClipSpeech(np.zeros(0, dtype=np.float32), (), duration)
    pieces, _ = collect_chunks(audio, found)
    chunks = tuple((int(c["start"]), int(c["end"])) for c in found)
    return ClipSpeech(np.concatenate(pieces).astype(np.float32, copy=False), chunks, duration)


def has_speech(audio: Samples) -> bool:
    """Whether the VAD finds any speech in ``audio`` (no model needed)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return bool(get_speech_timestamps(audio, VadOptions()))
