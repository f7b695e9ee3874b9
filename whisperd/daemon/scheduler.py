"""Jobs and the queue, on the one worker thread that owns the engine (worker.py).

The event loop never runs the model: the scheduler submits the pipeline's functions to
the worker and sends what they return to the job's connection. While a dictation
streams in, the streaming policy says when to cut a window or start a draft.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from whisperd import __version__
from whisperd.config import DaemonConfig
from whisperd.daemon import live, pieces, pipeline, remote
from whisperd.daemon.commit import (
    CommitDraft,
    CommitWords,
    LiveDecision,
    decide_live,
    decide_release,
)
from whisperd.daemon.jobs import Draft, Job, ReplySink
from whisperd.daemon.limits import Limits
from whisperd.daemon.state import DaemonState
from whisperd.daemon.streaming import (
    WINDOW_SEARCH,
    CutWindow,
    StartDraft,
    StreamPolicy,
    StreamState,
    decide,
)
from whisperd.daemon.worker import ModelHost, ModelWorker, real_engine
from whisperd.protocol import (
    MAX_AUDIO_FRAME,
    MAX_JSON_FRAME,
    ErrorCode,
    ErrorReply,
    ProtocolError,
    Reply,
    RequestId,
    ResultReply,
    SegmentReply,
    Transcribe,
)

if TYPE_CHECKING:
    from whisperd.engine import Transcription

log = logging.getLogger("whisperd")
T = TypeVar("T")


class Scheduler(ModelWorker):
    """Jobs and the queue, on top of the worker thread and the model (worker.py)."""

    def __init__(
        self,
        config: DaemonConfig,
        state: DaemonState,
        on_busy: Callable[[], None],
        on_settled: Callable[[], None],
        engine: ModelHost | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(engine if engine is not None else real_engine(config), on_busy, on_settled)
        self.config = config
        self.bounds = limits or Limits()  # resource limits (`limits()` is the hello reply)
        # Every job alive (receiving, queued or running), for the daemon-wide audio cap.
        self.jobs: weakref.WeakSet[Job] = weakref.WeakSet()
        self.state = state
        self.queued: list[Job] = []
        self._policy: StreamPolicy | None = None
        self.remote = remote.route_of(config)  # daemon.engine = remote (daemon/remote.py)

    @property
    def policy(self) -> StreamPolicy:
        if self._policy is None:
            self._policy = StreamPolicy.from_seconds(
                self.config.stream_window, self.config.draft_pause, pipeline.sample_rate()
            )
        return self._policy

    # -- bookkeeping

    def limits(self) -> dict[str, int]:
        return {
            "max_message": MAX_JSON_FRAME,
            "max_audio_frame": MAX_AUDIO_FRAME,
            "max_audio_bytes": self.config.max_audio_bytes,
        }

    def jobs_of(self, client: object) -> list[Job]:
        return [job for job in self.queued if job.client is client]

    @property
    def idle(self) -> bool:
        return not self.busy

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.state.started, 3),
            "model_loaded": self.engine.loaded,
            "loading": self.loading is not None and not self.loading.done(),
            **self.engine.describe(),
            "load_seconds": self.engine.load_seconds,
            "configured_model": self.config.model,
            "idle_timeout": self.config.idle_timeout,
            # The idle timer runs only while no connection is open, so from the caller's side
            # the daemon exits this long after the last client leaves, unless work remains.
            "idle_exit_in": None
            if self.busy or self.queued or self.state.front_requests
            else self.config.idle_timeout,
            "busy": bool(self.busy),
            "connections": len(self.state.connections),  # Unix socket clients
            # HTTP/Wyoming requests begun and not yet answered (their idle keep-alive
            # connections are not counted, as they do not keep the daemon up).
            "front_requests": self.state.front_requests,
            "queue_length": len(self.queued),
            "requests_served": self.requests_served,
            "socket_activated": self.state.socket_activated,
            **(self.remote.describe() if self.remote is not None else {}),
        }

    # -- jobs

    def new_job(self, request: Transcribe, send: ReplySink, client: object) -> Job:
        job = Job(request, send, client)
        self.jobs.add(job)
        if request.pcm is not None:
            from whisperd.daemon.pcmstore import CompactStream

            job.stream = CompactStream(request.pcm)
        else:
            from whisperd.audio import prepare_file_decoder

            # A decoder process starts while the file uploads (a no-op when one is ready),
            # so the first file after the daemon starts does not wait for PyAV to load.
            prepare_file_decoder()
        if self.remote is not None:
            self.remote.open(job)  # the local model loads only for a fallback
            return job
        # Start loading while the audio is still arriving: dictation streams as the user speaks.
        self.warm_up()
        return job

    def add_audio(self, job: Job, payload: bytes) -> None:
        """Take one audio frame of a job; AUDIO_TOO_LARGE (the job is then cancelled)."""
        limit = self.config.max_audio_bytes
        if job.size + len(payload) > limit:
            job.cancelled = True  # stops a window running on what it had sent
            raise ProtocolError(
                ErrorCode.AUDIO_TOO_LARGE,
                f"audio exceeds the limit of {limit} bytes per request (daemon.max_audio_bytes)",
                job.request.id,
            )
        held = self.held_audio()
        if held + len(payload) > self.bounds.max_buffered_audio:
            job.cancelled = True
            raise ProtocolError(
                ErrorCode.OVERLOADED,
                f"whisperd holds {held} bytes of audio for requests in progress, and "
                f"{self.bounds.max_buffered_audio} at most; try again when they are done",
                job.request.id,
            )
        job.size += len(payload)
        if job.stream is None:
            job.chunks.append(payload)
            return
        job.stream.feed(payload)
        if job.stream.length > self.config.max_audio_seconds * pipeline.sample_rate():
            job.cancelled = True
            raise ProtocolError(
                ErrorCode.AUDIO_TOO_LARGE,
                "the stream exceeds daemon.max_audio_seconds",
                job.request.id,
            )
        if self.remote is not None:
            self.remote.fed(job)  # to a Wyoming remote as it arrives; no local windows
            return
        self.advance_stream(job)

    def held_audio(self) -> int:
        """Client audio held by every request not yet answered or dropped."""
        return sum(job.held for job in self.jobs)

    def submit(self, job: Job) -> asyncio.Task[None]:
        """The audio is complete: queue the job now (a cancel right behind `end` finds it)."""
        job.received_at = time.monotonic()
        self.queued.append(job)
        return asyncio.ensure_future(self.run_job(job))

    def cancel(self, client: object, request_id: RequestId) -> bool:
        jobs = [j for j in self.jobs_of(client) if j.request.id == request_id]
        for job in jobs:
            job.cancelled = True
        return bool(jobs)

    def abandon(self, client: object) -> None:
        for job in self.jobs_of(client):
            job.cancelled = True

    async def run_job(self, job: Job) -> None:
        request_id = job.request.id
        reply: Reply
        try:
            reply = await self._run_job(job)
        except ProtocolError as exc:
            exc.request_id = request_id
            log.info("request %r failed (%s): %s", request_id, exc.code, exc.message)
            reply = exc.to_reply()
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the daemon down
            log.exception("request %r failed unexpectedly", request_id)
            reply = ErrorReply(request_id, ErrorCode.INTERNAL, f"internal error: {exc}")
        finally:
            job.released = True
            if job in self.queued:
                self.queued.remove(job)
        if not job.cancelled:
            job.send(reply)

    def segment_sender(self, job: Job) -> pipeline.SegmentSender:
        """Forward segments from the worker thread to the client as they are decoded."""
        loop = asyncio.get_running_loop()

        def deliver(segment: dict[str, Any]) -> None:  # on the loop: a cancel handled
            if not job.cancelled:  # since the worker decoded the segment wins
                job.send(SegmentReply(job.request.id, segment))

        def send_segment(segment: dict[str, Any]) -> None:  # on the worker
            loop.call_soon_threadsafe(deliver, segment)

        return send_segment

    async def _run_job(self, job: Job) -> Reply:
        if self.remote is not None:
            return await self.remote.run(self, job)
        load_wait = await self.ensure_loaded()
        # A window or draft in flight: its text is part of the result (and the worker is
        # busy with it anyway).
        while (running := job.window or job.drafting) is not None:
            await asyncio.shield(running)
        if live.is_live(job):
            self.commit_at_release(job)
        work = (self.engine, self.config, self.policy, self.queued, self.segment_sender(job))
        earlier = len(job.segments)  # committed before the release (windows, live pieces)
        self.set_status("transcribing")
        try:
            result, timings = await self.on_worker(pipeline.run_job, job, *work)
        finally:
            self.set_status(self.idle_status())
        if job.cancelled:
            # Cancelled or abandoned while decoding: the engine stopped at the next
            # segment, so this is a fragment, not a result.
            raise ProtocolError(ErrorCode.CANCELLED, "request cancelled while decoding")
        if live.is_live(job):
            result = live.finish(job, result, earlier)
        timings["load"] += load_wait
        timings["queue"] -= load_wait
        timings["total"] = time.monotonic() - job.received_at
        self.requests_served += 1
        self.log_result(job, result, timings)
        return ResultReply(
            job.request.id,
            result.to_message(),
            job.draft_used,
            job.packed_with,
            {k: round(max(v, 0.0), 4) for k, v in timings.items()},
            self.engine.describe(),
        )

    def log_result(self, job: Job, result: Transcription, timings: dict[str, float]) -> None:
        log.info(
            "request %r: audio %.2f s, queue %.3f s, load %.3f s, decode %.3f s, total %.3f s, "
            "%d segment(s)%s, device %s",
            job.request.id,
            result.duration,
            timings["queue"],
            timings["load"],
            timings["decode"],
            timings["total"],
            len(result.segments),
            f", skipped: {result.skipped}" if result.skipped else "",
            self.engine.describe()["device"],
        )
        if self.config.debug_log_text:
            log.info("request %r text (debug_log_text): %s", job.request.id, result.text)

    # -- streams: windows and drafts while the audio arrives

    def advance_stream(self, job: Job, event: bool = False) -> None:
        """Ask the streaming policy what to do with a stream; ``event``: something other
        than new audio changed (a window or draft ended), so ask whatever its length."""
        stream = job.stream
        if stream is None or job.window is not None or job.drafting is not None:
            return  # the running window or draft asks again when it ends
        if not event and job.next_check is not None and stream.length < job.next_check:
            return
        state = self.stream_state(job)
        is_live = live.is_live(job)
        if is_live:
            decision: LiveDecision = decide_live(self.policy, live.policy(), state)
        else:
            decision = decide(self.policy, state)
        job.next_check = None
        if isinstance(decision, CommitDraft | CommitWords):
            live.commit(job, decision)
            self.advance_stream(job, event=True)
        elif isinstance(decision, CutWindow):
            job.window = asyncio.ensure_future(self.run_window(job))
        elif isinstance(decision, StartDraft):
            job.drafting = asyncio.ensure_future(self.run_draft(job, decision))
        else:
            job.next_check = decision.next_at

    def stream_state(self, job: Job) -> StreamState:
        """What the streaming and commit policies need to know about a stream."""
        idle = not self.busy and not self.queued and self.engine.loaded
        return live.stream_state(job, self.config.min_rms, idle)

    def commit_at_release(self, job: Job) -> None:
        """Drafts still waiting to be confirmed, and a running draft's words but its last,
        with speech after them, are final at the release: commit them now (the client
        types them while the tail is decoded)."""
        while (decision := decide_release(live.policy(), self.stream_state(job))) is not None:
            live.commit(job, decision)

    async def run_window(self, job: Job) -> None:
        """Transcribe a finished stretch of a long dictation while it streams in: at
        release only the tail is left, so long dictation answers as fast as short."""
        is_live = live.is_live(job)
        if is_live:  # decode_piece reads the piece and its context itself
            cut = live.window_cut(job, WINDOW_SEARCH)
        else:
            piece, cut = pipeline.window_piece(job, WINDOW_SEARCH)
        start = job.committed
        offset = start / pipeline.sample_rate()
        options = pipeline.window_options(job, self.config)
        sender = self.segment_sender(job)
        started = time.monotonic()
        try:
            if is_live:
                assert job.stream is not None
                work = (job.stream.slice, job, start, cut, options, sender, lambda: job.cancelled)
                result = await self.on_worker(pieces.decode_piece, self.engine, *work)
            else:
                result = await self.on_worker(
                    self.engine.transcribe, piece, options, sender, lambda: job.cancelled, offset
                )
        except Exception as exc:  # noqa: BLE001 - the tail path transcribes it all again
            log.warning("window of a stream failed; it is redone at the end: %s", exc)
            job.window = None
            return
        job.last_decode = time.monotonic() - started
        job.window_seconds += job.last_decode
        job.segments.extend(result.segments)
        job.committed = cut
        job.window = None
        if is_live:
            live.commit_window(job, result.segments, start, cut)
        self.advance_stream(job, event=True)

    async def run_draft(self, job: Job, decision: StartDraft) -> None:
        """Transcribe what was said so far while the user pauses (see streaming.py), or
        while a live stream's speaker talks (a running draft, commit.py)."""
        assert job.stream is not None
        start, end = decision.start, decision.end
        options = pipeline.window_options(job, self.config)
        offset = start / pipeline.sample_rate()
        started = time.monotonic()
        try:
            # No segments are sent: a draft may be thrown away if the user speaks again.
            if live.is_live(job):
                work = (job.stream.slice, job, start, end, options, None, lambda: job.cancelled)
                result = await self.on_worker(pieces.decode_piece, self.engine, *work)
            else:
                piece = job.stream.slice(start, end)
                result = await self.on_worker(
                    self.engine.transcribe, piece, options, None, lambda: job.cancelled, offset
                )
        except Exception as exc:  # noqa: BLE001 - the release transcribes it all anyway
            log.warning("a draft of a stream failed; the release decodes it: %s", exc)
        else:
            job.last_decode = time.monotonic() - started
            if live.is_live(job):
                live.new_draft(job, Draft(start, end, result, decision.at_pause))
            else:
                job.draft = Draft(start, end, result)
        finally:
            job.draft_seconds += time.monotonic() - started
            job.drafting = None
        self.advance_stream(job, event=True)
