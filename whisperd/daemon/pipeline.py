"""The worker side of a request: decode, draft, pack, transcribe, merge.

Plain functions, no asyncio: they run on the worker thread that owns the engine (the
scheduler submits them), and the unit tests call them directly with a fake engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from whisperd.config import DaemonConfig
from whisperd.daemon.jobs import Job
from whisperd.daemon.streaming import StreamPolicy, Verdict, draft_verdict
from whisperd.protocol import ErrorCode, ProtocolError

if TYPE_CHECKING:
    from whisperd.audio import Samples
    from whisperd.engine import Transcription

SegmentSender = Callable[[dict[str, Any]], None]

# Files packed into shared windows: each at most this long, this many at once, and only
# files this small are decoded ahead of their turn to see whether they fit.
PACK_MAX_SECONDS = 20.0
PACK_MAX_FILES = 16
PACK_MAX_BYTES = 8 * 1024 * 1024


class Transcriber(Protocol):
    """What the pipeline needs of the engine (whisperd.engine.Engine; a fake in tests)."""

    def load(self) -> float: ...

    def has_speech(self, audio: Samples) -> bool: ...

    def transcribe(
        self,
        audio: Samples,
        options: dict[str, Any],
        on_segment: SegmentSender | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription: ...

    def transcribe_many(
        self, audios: list[Samples], options: dict[str, Any]
    ) -> list[Transcription]: ...


class Unloadable(Protocol):
    def unload(self) -> bool: ...


def unload_model(engine: Unloadable) -> bool:
    """Drop the model and give its memory back to the system, not only to the C heap.

    CTranslate2 frees the weights when the model object goes, but glibc keeps the freed
    pages (the weights and a transcription's buffers: about 60 MB with tiny.en) for
    reuse unless asked to trim them. What stays after this is listed in docs/protocol.md.
    """
    from whisperd.audio import release_file_decoder
    from whisperd.engine.model import release_free_heap

    was_loaded = engine.unload()
    release_file_decoder()  # the spare decoder process holds about 40 MB
    release_free_heap()  # collects cycles first: the model object may sit in one
    return was_loaded


def sample_rate() -> int:
    from whisperd.audio import SAMPLE_RATE

    return SAMPLE_RATE


def run_job(
    job: Job,
    engine: Transcriber,
    config: DaemonConfig,
    policy: StreamPolicy,
    queued: Sequence[Job],
    send_segment: SegmentSender,
) -> tuple[Transcription, dict[str, float]]:
    """Transcribe a request whose audio has all arrived; returns the result and timings.

    ``queued`` is the scheduler's queue (read, as a snapshot, to find packing peers).
    """
    started = time.monotonic()
    if job.cancelled:
        raise ProtocolError(ErrorCode.CANCELLED, "request cancelled")
    if job.packed is not None:  # done with the file before it, in shared windows
        for segment in job.packed.segments:
            send_segment(segment)
        return job.packed, {
            "queue": started - job.received_at,
            "audio_decode": 0.0,
            "decode": 0.0,
            "load": 0.0,
        }
    audio = decode(job, config.max_audio_seconds)
    rate = sample_rate()
    if audio.size / rate > config.max_audio_seconds:
        raise ProtocolError(
            ErrorCode.AUDIO_TOO_LARGE,
            f"audio of {audio.size / rate:.0f} s exceeds daemon.max_audio_seconds",
        )
    if job.cancelled:  # the client left while its audio was decoded
        raise ProtocolError(ErrorCode.CANCELLED, "request cancelled")
    decoded = time.monotonic()
    load = engine.load()  # a no-op unless unloaded meanwhile
    result = transcribe_audio(job, audio, engine, config, policy, queued, send_segment)
    if job.segments:
        result = merge_windows(job.segments, result, audio.size / rate)
    finished = time.monotonic()
    return result, {
        "queue": started - job.received_at,
        "audio_decode": decoded - started,
        "decode": finished - decoded - load,
        "load": load,
        "streamed_decode": job.window_seconds,
        "draft_decode": job.draft_seconds,
    }


def transcribe_audio(
    job: Job,
    audio: Samples,
    engine: Transcriber,
    config: DaemonConfig,
    policy: StreamPolicy,
    queued: Sequence[Job],
    send_segment: SegmentSender,
) -> Transcription:
    """The cheapest correct way to the text: the draft, shared windows, or the engine."""
    drafted = usable_draft(job, audio, engine, config, policy)
    if drafted is not None:
        job.draft_used = True
        for segment in drafted.segments:
            send_segment(segment)
        return drafted
    if peers := packable_peers(job, audio, config, queued):
        result = transcribe_packed(job, audio, peers, engine, config)
        for segment in result.segments:
            send_segment(segment)
        return result
    options = window_options(job, config)
    if job.request.options.get("live") and job.stream is not None:
        from whisperd.daemon.pieces import decode_piece

        work = (job.committed, audio.size, options, send_segment, lambda: job.cancelled)
        # The final piece: the fast path as configured, or as the request asks.
        unpadded = bool(options.get("fast_short_audio", config.fast_short_audio))
        return decode_piece(engine, lambda start, end: audio[start:end], job, *work, unpadded)
    return engine.transcribe(
        audio[job.committed :],
        options,
        send_segment,
        lambda: job.cancelled,
        job.committed / sample_rate(),
    )


def decode(job: Job, max_seconds: float) -> Samples:
    """The request's audio as samples. A file is decoded in the confined decoder process
    (whisperd/decoding/), which stops at ``max_seconds`` and when the job is cancelled."""
    from whisperd.audio import BadAudio, decode_file

    try:
        if job.stream is not None:
            return job.stream.finish()
        data = b"".join(job.chunks)
        job.chunks.clear()
        return decode_file(data, max_seconds=max_seconds, cancelled=lambda: job.cancelled)
    except BadAudio as exc:
        raise ProtocolError(exc.code, str(exc)) from None


def window_options(job: Job, config: DaemonConfig) -> dict[str, Any]:
    """Options for the next piece of a stream: earlier text conditions the model."""
    options = dict(job.request.options)
    if options.pop("live", False):
        # Live pieces are decoded as a file request decodes the same audio: with
        # timestamps, on faster-whisper's own path. Without timestamps the model dropped
        # a whole last sentence of a 30 s and a 60 s dictation and a digit (issue 12;
        # bench/live.py), and a piece is typed the moment it is final.
        options.pop("without_timestamps", None)
    elif job.stream is not None and options.get("without_timestamps"):
        # Dictation's request. With timestamps decoded, the unpadded window cost word
        # errors (docs/fastpath.md), so those streams take faster-whisper's own path
        # unless they ask for the fast path themselves.
        options.setdefault("fast_short_audio", config.fast_short_audio)
    if job.segments and "initial_prompt" not in options:
        options["initial_prompt"] = " ".join(s["text"] for s in job.segments)[-200:]
    return options


def usable_draft(
    job: Job, audio: Samples, engine: Transcriber, config: DaemonConfig, policy: StreamPolicy
) -> Transcription | None:
    """The draft's result when nothing was said after it; None otherwise."""
    draft = job.draft
    if draft is None or job.stream is None:
        return None
    spoken = job.stream.levels.speech_end(job.committed, config.min_rms)
    span = (draft.start, draft.end)
    verdict = draft_verdict(policy, span, job.committed, spoken, audio.size, draft.at_pause)
    if verdict is Verdict.UNUSABLE:
        return None
    if verdict is Verdict.USABLE_IF_SILENT and engine.has_speech(audio[draft.end :]):
        return None  # quiet, but the VAD hears a word
    return draft.result


def packable(options: dict[str, Any]) -> bool:
    """Options the packed path honours exactly (word times need one clip per call)."""
    return not options.get("word_timestamps") and not options.get("fast_short_audio")


def packable_peers(
    job: Job, audio: Samples, config: DaemonConfig, queued: Sequence[Job]
) -> list[tuple[Job, Samples]]:
    """Short files queued behind this one on its connection, same options, decoded.

    Whisper pays for a 30 s window whatever the audio's length, so short files are
    transcribed together in shared windows (whisperd/engine/packing.py); a client that sends
    several files before reading results (whisperctl does) gets this. One-at-a-time
    requests never wait for company.
    """
    if not config.pack_files or job.stream is not None:
        return []
    if audio.size > PACK_MAX_SECONDS * sample_rate() or not packable(job.request.options):
        return []
    peers: list[tuple[Job, Samples]] = []
    for other in list(queued):  # a snapshot: the loop thread appends to it
        if len(peers) + 1 >= PACK_MAX_FILES:
            break
        if other is job or other.stream is not None or other.packed is not None:
            continue
        if other.cancelled or not other.received_at or other.size > PACK_MAX_BYTES:
            continue
        # One client's batch only (whisperctl's files): a request on its own
        # connection keeps faster-whisper's exact text.
        if other.client is not job.client or other.request.options != job.request.options:
            continue
        decoded = decode_peer(other)
        if decoded is not None:
            peers.append((other, decoded))
    return peers


def decode_peer(other: Job) -> Samples | None:
    from whisperd.audio import BadAudio, decode_file

    try:
        decoded = decode_file(b"".join(other.chunks), max_seconds=PACK_MAX_SECONDS)
    except BadAudio:
        return None  # its own turn reports the error
    if decoded.size > PACK_MAX_SECONDS * sample_rate():
        return None
    return decoded


def transcribe_packed(
    job: Job,
    audio: Samples,
    peers: list[tuple[Job, Samples]],
    engine: Transcriber,
    config: DaemonConfig,
) -> Transcription:
    options = window_options(job, config)
    results = engine.transcribe_many([audio, *(a for _, a in peers)], options)
    for (other, _), result in zip(peers, results[1:], strict=True):
        other.packed, other.packed_with = result, len(results)
        other.chunks.clear()
    job.packed_with = len(results)
    return results[0]


def merge_windows(
    earlier: list[dict[str, Any]], tail: Transcription, duration: float
) -> Transcription:
    """The result of a stream transcribed in windows: earlier segments, then the tail's."""
    from whisperd.engine import Transcription

    segments = earlier + tail.segments
    text = " ".join(s["text"] for s in segments if s["text"])
    return Transcription(text, segments, tail.language or "en", duration, None, tail.path)


def window_piece(job: Job, search_seconds: float) -> tuple[Samples, int]:
    """The stretch of a stream the next window transcribes, and where it ends (samples):
    from ``committed`` to the quietest moment of the last ``search_seconds``."""
    from whisperd.audio import quiet_cut

    assert job.stream is not None
    # Only the stretch searched for the cut is converted to find it.
    end = job.stream.length
    low = max(job.committed, end - int(search_seconds * sample_rate()))
    cut = low + quiet_cut(job.stream.slice(low, end), 0, end - low, search_seconds)
    return job.stream.slice(job.committed, cut), cut
