"""Many short clips, few Whisper windows: pack their speech into shared 30 s windows.

Whisper encodes a full 30 s window per call, whatever the audio's length, so twenty 3 s
files cost twenty windows. Here each clip's speech is found with faster-whisper's Silero
VAD (as ``vad_filter`` does), the speech of consecutive clips is laid out in one window
with a gap of digital silence between clips, and each window is transcribed with the
model's regular ``transcribe`` (timestamps on, so Whisper closes a segment in each gap).
Every segment is mapped back to the clip whose speech its time span covers, then into the
clip's own timeline through the VAD map (``SpeechTimestampsMap``, as faster-whisper does).

The quality guard: a segment that reaches into two clips' speech, one that lies in a gap
or after the last clip, a clip with speech that gets no words, or a clip with more words
than its speech can hold, means the assignment is not certain; those clips (and, for a
clip without words, its neighbours, which may hold its words) are returned as ``None``
and the caller transcribes them alone. A clip's result therefore never holds words that
Whisper placed in another clip's time span.

Packing is not used for multilingual models without a fixed language (faster-whisper
detects one language per call, which would be wrong for a mix) nor for word timestamps;
:func:`can_pack` says so.

The gap and window lengths were chosen by measurement; the figures, and the per-file
baseline the packing is compared with, are in ``bench/packing.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from whisperd.engine import guard
from whisperd.engine.result import Segment, Transcription, joined_text, segment
from whisperd.engine.samples import SAMPLE_RATE, duration_of
from whisperd.engine.speech import ClipSpeech, find_speech

if TYPE_CHECKING:
    from whisperd.engine.model import Model
    from whisperd.engine.samples import Samples

__all__ = [
    "DEFAULT_GAP_SECONDS",
    "DEFAULT_WINDOW_SECONDS",
    "Assignment",
    "PackOutcome",
    "Placement",
    "Plan",
    "Span",
    "Window",
    "assign_segments",
    "can_pack",
    "plan_windows",
    "transcribe_packed",
    "window_audio",
]

DEFAULT_GAP_SECONDS = 1.5
"""Digital silence between two clips' speech in a window (chosen by measurement)."""
DEFAULT_WINDOW_SECONDS = 28.0
"""Most speech + gaps per window; the rest of Whisper's 30 s is left as padding so that
the last clip's segment ends inside the window (no second decoding pass)."""
TIMESTAMP_ERROR_SECONDS = 1.0
"""How far a segment's time may be off: tiny.en often writes whole-second timestamps, the
end rounded up (a clip ending at 18.08 s gives a segment ending at 19.00 s). A clip's
region is its speech widened by half of what the gap leaves beyond this error, so such a
segment never reaches the next clip's region when the gap is at least this long."""


# --- planning (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where one clip's speech lies in a window, in samples from the window's start."""

    clip: int
    start: int
    end: int

    @property
    def start_s(self) -> float:
        return duration_of(self.start)

    @property
    def end_s(self) -> float:
        return duration_of(self.end)


@dataclass(frozen=True)
class Window:
    placements: tuple[Placement, ...]

    @property
    def samples(self) -> int:
        return self.placements[-1].end if self.placements else 0

    @property
    def clips(self) -> tuple[int, ...]:
        return tuple(p.clip for p in self.placements)


@dataclass(frozen=True)
class Plan:
    windows: tuple[Window, ...]
    alone: tuple[int, ...]  # speech longer than a window: transcribe by itself
    empty: tuple[int, ...]  # no speech found: empty result without the model


def plan_windows(
    speech_samples: Sequence[int],
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
) -> Plan:
    """Lay out the clips' speech, in clip order, greedily into windows.

    A window holds clip, gap, clip, ... and never more than ``window_seconds``. Clips
    with no speech are ``empty``; clips whose speech alone exceeds a window are ``alone``
    and do not interrupt the packing of their neighbours.
    """
    limit = int(round(window_seconds * SAMPLE_RATE))
    gap = int(round(gap_seconds * SAMPLE_RATE))
    windows: list[Window] = []
    current: list[Placement] = []
    alone: list[int] = []
    empty: list[int] = []
    for clip, length in enumerate(speech_samples):
        if length <= 0:
            empty.append(clip)
            continue
        if length > limit:
            alone.append(clip)
            continue
        start = current[-1].end + gap if current else 0
        if start + length > limit:
            windows.append(Window(tuple(current)))
            current, start = [], 0
        current.append(Placement(clip, start, start + length))
    if current:
        windows.append(Window(tuple(current)))
    return Plan(tuple(windows), tuple(alone), tuple(empty))


def window_audio(window: Window, speech: Sequence[Samples]) -> Samples:
    """The window's samples: each clip's speech at its placement, zeros in the gaps."""
    out = np.zeros(window.samples, dtype=np.float32)
    for p in window.placements:
        out[p.start : p.end] = speech[p.clip]
    return out


# --- assignment (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A decoded segment, times in seconds from the window's start."""

    start: float
    end: float
    text: str


@dataclass
class Assignment:
    """Segments per clip (window times), and the clips whose result is not certain."""

    segments: dict[int, list[Span]]
    doubtful: dict[int, str] = field(default_factory=dict)


def assign_segments(
    window: Window,
    spans: Sequence[Span],
    gap_seconds: float = DEFAULT_GAP_SECONDS,
    max_words_per_second: float = guard.MAX_WORDS_PER_SECOND,
) -> Assignment:
    """Give each segment to the one clip whose region it lies in, or mark the clips doubtful.

    A clip's region is its speech widened on each side by half of what the gap leaves
    beyond ``TIMESTAMP_ERROR_SECONDS``, so neighbouring regions never touch and a
    timestamp that far off stays in its own clip's region. A segment reaching into two
    regions straddles clips; one touching no region (in a gap, after the last clip)
    cannot be assigned; in both cases the clips around it are doubtful. Any other clip
    with speech but no words is doubtful together with its neighbours (its words may sit
    in their segments), and so is a clip with more words than its speech can hold.
    """
    slack = max(0.0, gap_seconds - TIMESTAMP_ERROR_SECONDS) / 2
    placements = window.placements
    result = Assignment({p.clip: [] for p in placements})

    def doubt(index: int, reason: str) -> None:
        if 0 <= index < len(placements):
            result.doubtful.setdefault(placements[index].clip, reason)

    for span in spans:
        if not span.text.strip():
            continue  # an empty segment carries no words to misplace
        touched = [
            i
            for i, p in enumerate(placements)
            if span.start < p.end_s + slack and span.end > p.start_s - slack
        ]
        if len(touched) == 1:
            result.segments[placements[touched[0]].clip].append(span)
            continue
        if touched:
            for i in touched:
                doubt(i, f"segment {span.start:.2f}-{span.end:.2f} s straddles clips")
            continue
        # In a gap or the padding: the clips on either side are the candidates.
        after = next((i for i, p in enumerate(placements) if p.start_s >= span.end), None)
        before = len(placements) - 1 if after is None else after - 1
        for i in (before, after if after is not None else -1):
            doubt(i, f"segment {span.start:.2f}-{span.end:.2f} s lies outside any clip")

    for i, p in enumerate(placements):
        words = sum(len(guard.words(s.text)) for s in result.segments[p.clip])
        seconds = duration_of(p.end - p.start)
        if words == 0 and p.clip not in result.doubtful:
            # (A clip already doubtful has its words in a straddling or stray segment,
            # whose clips are all doubtful: no need to suspect the neighbours.)
            for j in (i - 1, i, i + 1):
                doubt(j, f"clip {p.clip} got no words")
        elif words > 2 + max_words_per_second * seconds:
            doubt(i, f"{words} words in {seconds:.2f} s of speech")
    return result


# --- transcription ------------------------------------------------------------------------


@dataclass
class PackOutcome:
    """Per clip, its result, or ``None`` when the caller must transcribe it alone."""

    results: list[Transcription | None]
    windows: int = 0
    model_calls: int = 0
    doubtful: dict[int, str] = field(default_factory=dict)
    alone: tuple[int, ...] = ()


def can_pack(model: Model, language: str | None, word_timestamps: bool = False) -> bool:
    """Whether packing keeps the per-file semantics for this model and these options."""
    if word_timestamps:
        return False  # word times would need their own mapping; not worth it for files
    return not model.model.is_multilingual or bool(language)


def transcribe_packed(
    model: Model,
    audios: Sequence[Samples],
    *,
    beam_size: int = 5,
    language: str | None = None,
    initial_prompt: str | None = None,
    without_timestamps: bool = False,
    use_vad: bool = True,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
) -> PackOutcome:
    """Transcribe the clips in shared windows; ``None`` for the clips to do alone.

    ``without_timestamps`` only shapes the result (one segment per clip, like
    faster-whisper's); the windows are always decoded with timestamps, which the
    assignment needs.
    """
    speech = [find_speech(audio, use_vad) for audio in audios]
    plan = plan_windows([s.samples.size for s in speech], window_seconds, gap_seconds)
    lang_default = language or ("" if model.model.is_multilingual else "en")
    outcome = PackOutcome([None] * len(audios), alone=plan.alone)
    for clip in plan.empty:
        # What faster-whisper's vad_filter returns for a clip without speech.
        outcome.results[clip] = Transcription.of_segments(
            [], lang_default, speech[clip].duration, "no_speech"
        )
    for window in plan.windows:
        segments, info = model.transcribe(
            window_audio(window, [s.samples for s in speech]),
            beam_size=beam_size,
            language=language,
            vad_filter=False,  # already cut to speech; the gaps must stay where they are
            initial_prompt=initial_prompt,
        )
        spans = [Span(s.start, s.end, s.text) for s in segments]
        outcome.windows += 1
        outcome.model_calls += 1
        assignment = assign_segments(window, spans, gap_seconds)
        outcome.doubtful.update(assignment.doubtful)
        for p in window.placements:
            if p.clip in assignment.doubtful:
                continue
            outcome.results[p.clip] = _clip_result(
                speech[p.clip],
                p,
                assignment.segments[p.clip],
                info.language,
                without_timestamps,
            )
    return outcome


def _clip_result(
    clip: ClipSpeech,
    placement: Placement,
    spans: Sequence[Span],
    language: str,
    without_timestamps: bool,
) -> Transcription:
    """Window times to the clip's speech times (clamped to its speech), then to clip times."""
    speech_end = duration_of(clip.samples.size)

    def local(seconds: float) -> float:
        return min(max(seconds - placement.start_s, 0.0), speech_end)

    segments: list[Segment] = [
        segment(
            clip.to_clip_time(local(span.start), False),
            clip.to_clip_time(local(span.end), True),
            span.text,
        )
        for span in spans
    ]
    if without_timestamps and segments:
        # faster-whisper's without_timestamps gives one segment over the whole speech.
        whole = joined_text(segments)
        start, end = clip.to_clip_time(0.0, False), clip.to_clip_time(speech_end, True)
        segments = [segment(start, end, whole)]
    return Transcription.of_segments(segments, language, clip.duration, "packed")
