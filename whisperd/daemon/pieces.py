"""Decoding one piece of a live stream, with the committed audio before it as context.

Runs on the worker thread. A piece decoded alone (a sentence between two pauses) came out
worse than the whole utterance decoded at once: the model hears each sentence without the
voice and the words around it (58 word errors against 48 on five 30-60 s dictations, each
sentence a piece, with only the earlier text as the prompt). So a piece is decoded
together with the committed pieces just before it (whole pieces, up to
``CONTEXT_SECONDS`` before it), their text forced as the decoder's ``prefix``, and the
text before them as the ``initial_prompt``: the model decodes the new speech as if it
were transcribing the whole stretch, and only what follows the prefix is new (38 against
45 in the same experiment; bench/live.py measures the daemon as built).

The forced prefix has one known failure: the model may end its timestamped segment right
after it and return no new text, or not reproduce it. Then the same audio and prefix are
decoded again without timestamps, where the model goes on from the prefix; only when that
fails too and the VAD hears speech in the piece is the piece decoded alone, conditioned on
the earlier text (never worse than dropping it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from whisperd.daemon.jobs import Job, Piece

# Samples ``start:end`` of a stream, as float32: only the stretch a piece is decoded from
# is converted (``CompactStream.slice``), so the work per piece does not grow with the
# length of the dictation.
AudioReader = Callable[[int, int], "Samples"]

if TYPE_CHECKING:
    from whisperd.audio import Samples
    from whisperd.daemon.pipeline import SegmentSender, Transcriber
    from whisperd.engine import Segment, Transcription

# Committed audio decoded again before a piece: whole pieces that start at most
# CONTEXT_SECONDS before it. A longer prefix made one long forced segment after which the
# model stopped early: with 26 s of context it dropped the last sentence of a 60 s
# dictation that 14 s kept. And all of it within one Whisper window (the prefix only
# applies to the first).
CONTEXT_SECONDS = 10.0
WINDOW_SECONDS = 28.0
PROMPT_CHARS = 200
# FINAL_UNPADDED: the final piece, decoded after the release while the user waits, is
# decoded with its context on the unpadded window when the fast path is allowed (the fast
# path, docs/fastpath.md: the speech the VAD finds in the context and the tail, plus 2 s,
# at least 10 s, instead of 30 s; its quality guard sends doubtful output to the 30 s
# window). Only that piece, and only with context: it measured the same word errors on
# every set (bench/live.py), while pieces decoded so during the hold lost words (espeak
# 26 against 22, the 30 s dictations 27 against 18). A final piece without context (the
# whole of a short dictation) keeps the 30 s window, as a file request: without a prefix
# the unpadded window with timestamps measured 0.8 points of word errors worse on the
# fast path's 207-clip validation (docs/fastpath.md).
TRAILING = ".!?,;: "  # taken off the prefix's end, and off the new text's start


def _rate() -> int:
    from whisperd.audio import SAMPLE_RATE

    return SAMPLE_RATE


def context(
    pieces: list[Piece], start: int, end: int, before: int, window: int
) -> tuple[int, str, str]:
    """For a piece ``start``..``end`` after the committed ``pieces``: where its audio
    starts (the first of the latest pieces that begin within ``before`` samples before
    ``start``, all of it within ``window`` samples), the prefix (their text, without its last
    full stop) and the prompt (the text before them)."""
    first = len(pieces)  # pieces tile the stream up to `start`, in order
    while first > 0 and start - pieces[first - 1].start <= before:
        # Words committed mid-sentence (a piece from `start` to `start`) were spoken in
        # this piece's audio: they always lead its prefix, or they would be heard twice.
        if end - pieces[first - 1].start > window and pieces[first - 1].start < start:
            break
        first -= 1
    around = pieces[first:]
    audio_start = around[0].start if around else start
    # A piece ends where the speaker paused, which the model, hearing no more, took for a
    # sentence end; given "... this software." as the prefix, it started the next piece
    # as a new sentence ("An associated" for "and associated").
    prefix = " ".join(p.text for p in around if p.text).rstrip(TRAILING)
    prompt = " ".join(p.text for p in pieces[:first] if p.text)[-PROMPT_CHARS:]
    return audio_start, prefix, prompt


def strip_prefix(segments: list[Segment], prefix: str, start: float) -> list[Segment] | None:
    """The segments after ``prefix`` (which the decoder was forced to begin with), none
    starting before ``start`` seconds; None when the decode does not begin with it."""
    remaining = prefix.strip()
    out: list[Segment] = []
    for item in segments:
        text = str(item["text"]).strip()
        if remaining:
            if text.startswith(remaining):
                # The committed piece already ends with its punctuation.
                text, remaining = text[len(remaining) :].lstrip(TRAILING).strip(), ""
            elif remaining.startswith(text):
                remaining = remaining[len(text) :].strip()
                continue
            else:
                return None
        if any(c.isalnum() for c in text):  # not "//" or "...": decoder noise
            begin = max(float(item["start"]), start)
            out.append({"start": begin, "end": max(float(item["end"]), begin), "text": text})
    return None if remaining else out


def decode_piece(
    engine: Transcriber,
    read: AudioReader,
    job: Job,
    start: int,
    end: int,
    options: dict[str, Any],
    on_segment: SegmentSender | None,
    cancelled: Callable[[], bool],
    final_unpadded: bool = False,
) -> Transcription:
    """Transcribe samples ``start:end`` of a live stream (``read`` gives them) whose
    pieces before ``start`` are committed; segments in stream time, sent to
    ``on_segment`` once final. ``final_unpadded``: this is the final piece, decoded after
    the release, and the fast path is allowed: its decode with context takes the
    unpadded window (FINAL_UNPADDED)."""
    from whisperd.engine import Transcription

    rate = _rate()
    options = {k: v for k, v in options.items() if k not in ("initial_prompt", "prefix")}
    limits = int(CONTEXT_SECONDS * rate), int(WINDOW_SECONDS * rate)
    audio_start, prefix, prompt = context(job.pieces, start, end, *limits)
    if prompt:
        options["initial_prompt"] = prompt
    duration = (end - start) / rate
    # The vocabulary stays: with a forced prefix the engine puts its entries in the
    # prompt before the earlier text (``hotwords_in_prompt``), where hotwords would go.
    wide_options = {**options, "prefix": prefix, "fast_short_audio": final_unpadded}
    if prefix:
        work = (engine, read, audio_start, start, end, wide_options, prefix)
        done = _forced(*work, on_segment, cancelled)
        if done is not None:
            return done
    if cancelled():
        return Transcription.of_segments([], "", duration)
    if prefix:  # the decode with context failed: the piece alone, after the earlier text
        earlier = [p.text for p in job.pieces if p.text and not p.start == p.end == start]
        options["initial_prompt"] = " ".join(earlier)[-PROMPT_CHARS:]
    return _alone(engine, read, job, start, end, options, on_segment, cancelled)


def _alone(
    engine: Transcriber,
    read: AudioReader,
    job: Job,
    start: int,
    end: int,
    options: dict[str, Any],
    on_segment: SegmentSender | None,
    cancelled: Callable[[], bool],
) -> Transcription:
    """The piece decoded alone. Words committed mid-sentence were spoken in its audio:
    it is forced to begin with them, and they are left out; when the model will not, it
    is decoded as it is, and may give them again (a word twice rather than a word lost)."""
    heard = said_in_piece(job.pieces, start)
    if heard:
        done = _forced(engine, read, start, start, end, options, heard, on_segment, cancelled)
        if done is not None:
            return done
    return engine.transcribe(read(start, end), options, on_segment, cancelled, start / _rate())


def _forced(
    engine: Transcriber,
    read: AudioReader,
    audio_start: int,
    start: int,
    end: int,
    options: dict[str, Any],
    prefix: str,
    on_segment: SegmentSender | None,
    cancelled: Callable[[], bool],
) -> Transcription | None:
    """Samples ``audio_start:end`` decoded with the decoder forced to begin with
    ``prefix``: what follows it is the piece ``start:end`` (its segments sent); None when
    the model did not begin with the prefix, or gave nothing after it while the piece
    holds speech. With timestamps first (as a file request decodes); when the model
    closes its segment right after the prefix, again without them: then it goes on from
    the prefix ("... this software, and associated documentation files") where the piece
    decoded alone began a new sentence ("An associated", bench/live.py, the MIT
    recordings)."""
    from whisperd.engine import Transcription

    rate, duration = _rate(), (end - start) / _rate()
    for retry in ({}, {"without_timestamps": True}):
        if cancelled():
            return Transcription.of_segments([], "", duration)
        forced = {**options, "prefix": prefix, **retry}
        wide = engine.transcribe(
            read(audio_start, end), forced, None, cancelled, audio_start / rate
        )
        new = strip_prefix(wide.segments, prefix, start / rate)
        if new is not None and (new or not engine.has_speech(read(start, end))):
            for item in new:
                if on_segment is not None:
                    on_segment(item)
            return Transcription.of_segments(new, wide.language, duration, wide.path)
    return None


def said_in_piece(pieces: list[Piece], start: int) -> str:
    """The words committed in the middle of a sentence whose audio is after ``start``
    (the pieces from ``start`` to ``start``), in order."""
    return " ".join(p.text for p in pieces if p.start == p.end == start and p.text)
