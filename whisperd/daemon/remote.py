"""Jobs sent to a remote engine (``daemon.engine = "remote"``, docs/remote.md).

The scheduler hands every job here when a remote is configured; the rest of the daemon
is unchanged: the same connection, limits, decoder sandbox and replies. A file is decoded
*locally*, in the confined decoder process (hostile input stays on this machine), and the
remote gets 16 kHz 16-bit mono audio. A dictation stream goes to a Wyoming remote while
the user speaks; an OpenAI-compatible remote gets it at release (its API takes whole
files). When the remote fails, ``daemon.fallback`` decides: "local" transcribes with the
local model (the result's ``engine`` says ``local-fallback``, the log says why) or "none"
answers ``remote_unavailable``. The local model is loaded only for a fallback.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from whisperd.config import DaemonConfig
from whisperd.daemon import live, pipeline
from whisperd.daemon.jobs import Job
from whisperd.engine.remote.common import RemoteUnavailable, pcm16
from whisperd.engine.remote.target import OPENAI, parse_target
from whisperd.protocol import ErrorCode, ProtocolError, ResultReply, SegmentReply

if TYPE_CHECKING:
    from whisperd.daemon.scheduler import Scheduler
    from whisperd.engine import Transcription
    from whisperd.engine.remote.openai import OpenAIRemote
    from whisperd.engine.remote.wyoming import WyomingRemote, WyomingStream
    from whisperd.engine.samples import Samples

log = logging.getLogger("whisperd")


class RemoteRoute:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.target = parse_target(config.remote_url)
        self.openai: OpenAIRemote | None = None
        self.wyoming: WyomingRemote | None = None
        if self.target.kind == OPENAI:
            from whisperd.engine.remote.openai import OpenAIRemote

            self.openai = OpenAIRemote(
                self.target, config.remote_model, config.remote_token_file, config.remote_timeout
            )
        else:
            from whisperd.engine.remote.wyoming import WyomingRemote

            self.wyoming = WyomingRemote(self.target, config.remote_timeout)
        # A dictation's Wyoming exchange while it streams in, and the samples sent so far.
        self.streams: weakref.WeakKeyDictionary[Job, WyomingStream] = weakref.WeakKeyDictionary()
        self.sent: weakref.WeakKeyDictionary[Job, int] = weakref.WeakKeyDictionary()

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "remote",
            "remote": self.target.describe(),
            "remote_kind": self.target.kind,
        }

    # -- while the audio arrives

    def open(self, job: Job) -> None:
        """A new job: a dictation stream starts its Wyoming exchange now."""
        if job.stream is not None and self.wyoming is not None:
            self.streams[job] = self.wyoming.stream(remote_options(job), lambda: job.cancelled)
            self.sent[job] = 0

    def fed(self, job: Job) -> None:
        """New audio in a job's stream: send what the remote has not had yet."""
        stream, compact = self.streams.get(job), job.stream
        if stream is None or compact is None:
            return
        sent = self.sent.get(job, 0)
        if compact.length > sent:
            stream.feed(compact.newest_pcm(compact.length - sent))
            self.sent[job] = compact.length

    # -- at release

    async def run(self, scheduler: Scheduler, job: Job) -> ResultReply:
        stream = self.streams.pop(job, None)
        started = time.monotonic()
        try:
            audio = await scheduler.on_worker(pipeline.decode, job, self.config.max_audio_seconds)
        except BaseException:
            if stream is not None:
                stream.abort()
            raise
        decoded = time.monotonic()
        self._check(job, audio, stream)
        options = pipeline.window_options(job, self.config)
        result, engine, load = await self._transcribe(scheduler, job, audio, options, stream)
        if job.cancelled:
            raise ProtocolError(ErrorCode.CANCELLED, "request cancelled while transcribing")
        if live.is_live(job):
            result = live.finish(job, result, 0)
        finished = time.monotonic()
        timings = {
            "queue": started - job.received_at,
            "audio_decode": decoded - started,
            "load": load,
            "decode": finished - decoded - load,  # the remote's answer (or the fallback)
            "total": finished - job.received_at,
        }
        scheduler.requests_served += 1
        self.log_result(job, result, timings, engine)
        rounded = {k: round(max(v, 0.0), 4) for k, v in timings.items()}
        return ResultReply(job.request.id, result.to_message(), False, 0, rounded, engine)

    def log_result(
        self, job: Job, result: Transcription, timings: dict[str, float], engine: dict[str, Any]
    ) -> None:
        log.info(
            "request %r: audio %.2f s, audio decode %.3f s, answered by %s (%s), "
            "total %.3f s, %d segment(s)%s",
            job.request.id,
            result.duration,
            timings["audio_decode"],
            engine["engine"],
            self.target.describe() if engine["engine"] == "remote" else engine.get("device"),
            timings["total"],
            len(result.segments),
            f", skipped: {result.skipped}" if result.skipped else "",
        )
        if self.config.debug_log_text:
            log.info("request %r text (debug_log_text): %s", job.request.id, result.text)

    def _check(self, job: Job, audio: Samples, stream: WyomingStream | None) -> None:
        rate = pipeline.sample_rate()
        problem = None
        if audio.size / rate > self.config.max_audio_seconds:
            problem = ProtocolError(
                ErrorCode.AUDIO_TOO_LARGE,
                f"audio of {audio.size / rate:.0f} s exceeds daemon.max_audio_seconds",
            )
        elif job.cancelled:
            problem = ProtocolError(ErrorCode.CANCELLED, "request cancelled")
        if problem is not None:
            if stream is not None:
                stream.abort()
            raise problem

    async def _transcribe(
        self,
        scheduler: Scheduler,
        job: Job,
        audio: Samples,
        options: dict[str, Any],
        stream: WyomingStream | None,
    ) -> tuple[Transcription, dict[str, Any], float]:
        """(the result, who made it, seconds spent loading the local model)."""
        skipped = skip_reason(audio, self.config)
        if skipped is not None:  # as the local engine would: no model (or remote) call
            if stream is not None:
                stream.abort()
            return skipped_result(audio, options, skipped), self.describe(), 0.0
        try:
            with scheduler.working():
                result = await self._ask(audio, options, stream)
        except RemoteUnavailable as exc:
            return await self._fall_back(scheduler, job, audio, options, exc)
        if not job.cancelled:
            for item in result.segments:
                job.send(SegmentReply(job.request.id, item))
        return result, self.describe(), 0.0

    async def _ask(
        self, audio: Samples, options: dict[str, Any], stream: WyomingStream | None
    ) -> Transcription:
        duration = audio.size / pipeline.sample_rate()
        if stream is not None:
            return await stream.finish(duration)
        if self.openai is not None:
            return await self.openai.transcribe(audio, options)
        assert self.wyoming is not None
        return await self.wyoming.send_all(pcm16(audio), options)

    async def _fall_back(
        self,
        scheduler: Scheduler,
        job: Job,
        audio: Samples,
        options: dict[str, Any],
        exc: RemoteUnavailable,
    ) -> tuple[Transcription, dict[str, Any], float]:
        where = self.target.describe()
        log.warning(
            "request %r: remote engine %s failed (%s): %s",
            job.request.id,
            where,
            exc.reason,
            exc.message,
        )
        if self.config.fallback == "none":
            raise ProtocolError(
                ErrorCode.REMOTE_UNAVAILABLE,
                f"the remote engine {where} is unavailable ({exc.reason}): {exc.message}",
            )
        log.warning(
            "request %r: the local model answers instead (daemon.fallback = local)", job.request.id
        )
        load = await scheduler.ensure_loaded()
        sender = scheduler.segment_sender(job)
        plain = {k: v for k, v in options.items() if k != "prefix"}
        result = await scheduler.on_worker(
            scheduler.engine.transcribe, audio, plain, sender, lambda: job.cancelled
        )
        engine = {
            **scheduler.engine.describe(),
            "engine": "local-fallback",
            "remote_error": exc.reason,
        }
        return result, engine, load


def remote_options(job: Job) -> dict[str, Any]:
    """What a remote is told: the language and the vocabulary (and earlier text)."""
    keep = ("language", "vocabulary", "initial_prompt")
    return {k: v for k, v in job.request.options.items() if k in keep}


def skip_reason(audio: Samples, config: DaemonConfig) -> str | None:
    """The local engine's prefilter (whisperd/engine/core.py): too short or silent audio is
    not worth a model's time, local or remote."""
    import numpy as np

    if audio.size < config.min_duration * pipeline.sample_rate():
        return "too_short"
    level = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return "silent" if level < config.min_rms else None


def skipped_result(audio: Samples, options: dict[str, Any], why: str) -> Transcription:
    from whisperd.engine import Transcription

    duration = audio.size / pipeline.sample_rate()
    return Transcription("", [], options.get("language") or "", duration, why)


def route_of(config: DaemonConfig) -> RemoteRoute | None:
    return RemoteRoute(config) if config.engine == "remote" else None
