"""The engine's one result type and the segment helpers every decoding path shares.

The regular path, the fast path and packing all end in a ``Transcription`` whose segments
are the protocol's ``{"start", "end", "text"}`` dicts (times in seconds in the caller's
audio, rounded to milliseconds, text stripped), built by ``segment`` and joined by
``joined_text``, so the three paths cannot drift apart in shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Segment = dict[str, Any]
"""One segment as the protocol sends it: ``{"start": s, "end": s, "text": str}``, and
``"words"`` when the request asked for ``word_timestamps``."""

Word = dict[str, Any]
"""One timed word: ``{"word": str, "start": s, "end": s}`` (OpenAI's shape)."""

SegmentCallback = Callable[[Segment], None]


def segment(
    start: float, end: float, text: str, offset: float = 0.0, words: list[Word] | None = None
) -> Segment:
    """A segment shifted by ``offset`` seconds, times rounded to ms, text stripped; its
    ``words`` (already shifted, see ``word``) only when they were asked for."""
    item: Segment = {
        # float(): faster-whisper's word-timed segments have numpy times
        "start": round(float(start) + offset, 3),
        "end": round(float(end) + offset, 3),
        "text": text.strip(),
    }
    if words is not None:
        item["words"] = words
    return item


def word(start: float, end: float, text: str, offset: float = 0.0) -> Word:
    """A word shifted by ``offset`` seconds, times rounded to ms, its leading space (how
    Whisper's tokens spell a word boundary) stripped."""
    return {"word": text.strip(), "start": round(start + offset, 3), "end": round(end + offset, 3)}


def joined_text(segments: Iterable[Segment]) -> str:
    """The segments' texts as one line, as faster-whisper users join them."""
    return " ".join(s["text"] for s in segments if s["text"])


@dataclass
class Transcription:
    """What one clip gave: its text and segments, and which path decoded it.

    ``path`` is "standard" (faster-whisper's own ``transcribe``), "unpadded" (the fast
    path), "packed" (a shared window), "no_speech" (the VAD found none, no model call)
    or "single" (one plain ``transcribe`` call, the packing's per-file baseline).
    """

    text: str
    segments: list[Segment]
    language: str
    duration: float
    skipped: str | None = None
    path: str = "standard"
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of_segments(
        cls, segments: list[Segment], language: str, duration: float, path: str = "standard"
    ) -> Transcription:
        return cls(joined_text(segments), segments, language, duration, None, path)

    def to_message(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "segments": self.segments,
            "language": self.language,
            "duration": round(self.duration, 3),
            "skipped": self.skipped,
            "decoder": self.path,
        }
