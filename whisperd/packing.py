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

Measured with ``python -m bench.packing --more --reps 3`` (bundled tiny.en, int8, 2-core
CPU, OPENBLAS_NUM_THREADS=1 at the time, beam 5, VAD on; best of 3; gap 1.5 s, window 28 s)::

    material (files, audio)          per file: wall  audio s/s  WER    calls
                                     packed:   wall  audio s/s  WER    calls  fallbacks
    espeak 2-6 s (20, 68.3 s)         10.15 s   6.7  11.5 %  20
                                       3.52 s  19.4   5.0 %   4      0    2.9x
    + jfk, stereo L/R, mit_a (24, 98.3 s)
                                      12.23 s   8.0   8.5 %  24
                                       4.82 s  20.4   3.7 %   5      0    2.5x
    espeak, 60 files (60, 211.7 s)    30.40 s   7.0  13.3 %  60
                                      10.94 s  19.4   8.6 %  12      0    2.8x

Packed WER was below per-file WER in every run and setting (the neighbouring clips give
the tiny model context); the bench's espeak audio is dithered by sox, so single figures
move by a few words between runs. One 30 s encoder pass costs 0.34 s here, a per-file
call about 0.5 s; a packed window of five or six clips about 0.9 s.

Tuning (``--gap 1.0 1.25 1.5 2.0 --window 28 30``, two runs, 60 files): a 1.0 s gap is
as fast per window, but whole-second timestamps then reach the next clip (2-7 fallbacks
per run, 1.8x); 1.25-2.0 s gave no fallbacks, 2.0 s one window more (13) and 10 % slower:
1.5 s it is. A 30 s window put the last clip at the window's end, where segments
straddled (up to 4 fallbacks) and decoding slowed (1.4-1.8x on the 20 files); 28 s
leaves Whisper 2 s of padding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # pragma: no cover - typing only
    from faster_whisper import WhisperModel

__all__ = [
    "DEFAULT_GAP_SECONDS",
    "DEFAULT_WINDOW_SECONDS",
    "Assignment",
    "ClipResult",
    "ClipSpeech",
    "PackOutcome",
    "Placement",
    "Plan",
    "Span",
    "Window",
    "assign_segments",
    "can_pack",
    "find_speech",
    "plan_windows",
    "speech_to_clip_time",
    "transcribe_clips",
    "transcribe_packed",
    "transcribe_single",
    "window_audio",
]

SAMPLE_RATE = 16000
Samples = npt.NDArray[np.float32]

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
MAX_WORDS_PER_SECOND = 6.0
"""More than ``2 + 6/s`` words for a clip's speech cannot be its own (as in fastpath)."""


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
    duration = audio.size / SAMPLE_RATE
    if not use_vad:
        return ClipSpeech(np.asarray(audio, dtype=np.float32), (), duration)
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    found = get_speech_timestamps(audio, VadOptions())
    if not found:
        return ClipSpeech(np.zeros(0, dtype=np.float32), (), duration)
    pieces, _ = collect_chunks(audio, found)
    chunks = tuple((int(c["start"]), int(c["end"])) for c in found)
    return ClipSpeech(np.concatenate(pieces).astype(np.float32, copy=False), chunks, duration)


# --- planning (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where one clip's speech lies in a window, in samples from the window's start."""

    clip: int
    start: int
    end: int

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE


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


def _word_count(text: str) -> int:
    return len(re.sub(r"[^\w\s]", " ", text.lower().replace("'", "")).split())


def assign_segments(
    window: Window,
    spans: Sequence[Span],
    gap_seconds: float = DEFAULT_GAP_SECONDS,
    max_words_per_second: float = MAX_WORDS_PER_SECOND,
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
        words = sum(_word_count(s.text) for s in result.segments[p.clip])
        seconds = (p.end - p.start) / SAMPLE_RATE
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
class ClipResult:
    """One clip's transcription; segment times are in the clip's own timeline."""

    text: str
    segments: list[dict[str, Any]]
    language: str
    duration: float
    path: str  # "packed", "no_speech" or "single"


@dataclass
class PackOutcome:
    """Per clip, its result, or ``None`` when the caller must transcribe it alone."""

    results: list[ClipResult | None]
    windows: int = 0
    model_calls: int = 0
    doubtful: dict[int, str] = field(default_factory=dict)
    alone: tuple[int, ...] = ()


def can_pack(model: WhisperModel, language: str | None, word_timestamps: bool = False) -> bool:
    """Whether packing keeps the per-file semantics for this model and these options."""
    if word_timestamps:
        return False  # word times would need their own mapping; not worth it for files
    return not model.model.is_multilingual or bool(language)


def transcribe_packed(
    model: WhisperModel,
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
        outcome.results[clip] = ClipResult("", [], lang_default, speech[clip].duration, "no_speech")
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
) -> ClipResult:
    """Window times to the clip's speech times (clamped to its speech), then to clip times."""
    speech_end = clip.samples.size / SAMPLE_RATE

    def local(seconds: float) -> float:
        return min(max(seconds - placement.start_s, 0.0), speech_end)

    segments: list[dict[str, Any]] = []
    for span in spans:
        start = clip.to_clip_time(local(span.start), False)
        end = clip.to_clip_time(local(span.end), True)
        segments.append({"start": round(start, 3), "end": round(end, 3), "text": span.text.strip()})
    text = " ".join(s["text"] for s in segments if s["text"])
    if without_timestamps and segments:
        # faster-whisper's without_timestamps gives one segment over the whole speech.
        start = clip.to_clip_time(0.0, False)
        end = clip.to_clip_time(speech_end, True)
        segments = [{"start": round(start, 3), "end": round(end, 3), "text": text}]
    return ClipResult(text, segments, language, clip.duration, "packed")


def transcribe_single(
    model: WhisperModel,
    audio: Samples,
    *,
    beam_size: int = 5,
    language: str | None = None,
    initial_prompt: str | None = None,
    use_vad: bool = True,
) -> ClipResult:
    """One clip, one regular ``transcribe`` call (the per-file baseline and the fallback)."""
    segments, info = model.transcribe(
        audio,
        beam_size=beam_size,
        language=language,
        vad_filter=use_vad,
        initial_prompt=initial_prompt,
    )
    items = [
        {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip()}
        for s in segments
    ]
    text = " ".join(s["text"] for s in items if s["text"])
    return ClipResult(text, items, info.language, audio.size / SAMPLE_RATE, "single")


def transcribe_clips(
    model: WhisperModel,
    audios: Sequence[Samples],
    *,
    beam_size: int = 5,
    language: str | None = None,
    initial_prompt: str | None = None,
    use_vad: bool = True,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
    single: Callable[[int], ClipResult] | None = None,
) -> tuple[list[ClipResult], PackOutcome]:
    """Packed transcription with the fallbacks done: every clip gets a result.

    ``single(i)`` transcribes clip ``i`` alone; by default one ``transcribe`` call with
    the VAD, like a per-file request. ``PackOutcome.model_calls`` counts the fallbacks too.
    """

    def alone(index: int) -> ClipResult:
        return transcribe_single(
            model,
            audios[index],
            beam_size=beam_size,
            language=language,
            initial_prompt=initial_prompt,
            use_vad=use_vad,
        )

    outcome = transcribe_packed(
        model,
        audios,
        beam_size=beam_size,
        language=language,
        initial_prompt=initial_prompt,
        use_vad=use_vad,
        window_seconds=window_seconds,
        gap_seconds=gap_seconds,
    )
    results: list[ClipResult] = []
    for index, result in enumerate(outcome.results):
        if result is None:
            result = (single or alone)(index)
            outcome.model_calls += 1
        results.append(result)
    return results, outcome
