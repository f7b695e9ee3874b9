"""One client connection: the frame loop and the dispatch of its requests.

A connection sees the scheduler only through the narrow ``Scheduler`` protocol below,
never the whole daemon; its replies go out through ``send``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from whisperd import __version__
from whisperd.daemon.jobs import Job, ReplySink
from whisperd.daemon.limits import Limits
from whisperd.protocol import (
    MAX_AUDIO_FRAME,
    MAX_JSON_FRAME,
    PROTOCOL_VERSION,
    Accepted,
    Audio,
    Cancel,
    End,
    ErrorCode,
    ErrorReply,
    Hello,
    HelloReply,
    Load,
    Pong,
    ProtocolError,
    Reply,
    RequestId,
    Simple,
    StatusReply,
    Transcribe,
    audio_size,
    decode_message,
    encode_reply,
    loose_request_id,
    parse_request,
    read_frame,
)

log = logging.getLogger("whisperd")

# Request errors of one connection logged at INFO; the rest go to DEBUG, so that a client
# sending on after an error (every frame refused) cannot flood the journal.
LOGGED_REQUEST_ERRORS = 5


class Scheduler(Protocol):
    """What a connection may ask of the daemon."""

    def limits(self) -> dict[str, int]: ...

    def status(self) -> dict[str, Any]: ...

    async def load(self, request_id: RequestId) -> Reply: ...

    async def unload(self, request_id: RequestId) -> Reply: ...

    def new_job(self, request: Transcribe, send: ReplySink, client: object) -> Job: ...

    def add_audio(self, job: Job, payload: bytes) -> None: ...

    def submit(self, job: Job) -> asyncio.Task[None]: ...

    def cancel(self, client: object, request_id: RequestId) -> bool: ...

    def abandon(self, client: object) -> None: ...

    def jobs_of(self, client: object) -> list[Job]: ...


class Connection:
    def __init__(
        self,
        scheduler: Scheduler,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.limits = limits or Limits()
        self.loop = asyncio.get_running_loop()
        self.last_heard = self.loop.time()  # the last frame, or the end of work for us
        self.watchdog: asyncio.TimerHandle | None = None
        self.reader = reader
        self.writer = writer
        self.greeted = False
        self.receiving: Job | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.loads: dict[asyncio.Task[None], RequestId] = {}  # load/unload being answered
        self.request_errors = 0

    def send(self, reply: Reply) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_reply(reply))

    async def serve(self) -> None:
        self.watch()
        try:
            while True:
                payload = await read_frame(self.reader, MAX_JSON_FRAME, "message")
                if payload is None:
                    break
                self.last_heard = self.loop.time()
                try:
                    message = decode_message(payload)
                    # Audio is read before anything else is checked, so that whatever the
                    # reply, the byte stream stays in step.
                    audio = await self.announced_audio(message)
                    await self.dispatch(message, audio)
                except ProtocolError as exc:
                    if exc.fatal:
                        raise
                    self.log_request_error(exc)
                    self.send(exc.to_reply())
                await self.writer.drain()
        except ProtocolError as exc:
            log.warning("closing a connection after a protocol error (%s): %s", exc.code, exc)
            self.send(exc.to_reply())
        except (ConnectionError, BrokenPipeError):
            log.info("client went away")
        finally:
            if self.watchdog is not None:
                self.watchdog.cancel()
            self.abandon()
            await self.wait_tasks()
            await self.close()

    def log_request_error(self, exc: ProtocolError) -> None:
        self.request_errors += 1
        if self.request_errors <= LOGGED_REQUEST_ERRORS:
            log.info("request error (%s): %s", exc.code, exc.message)
            if self.request_errors == LOGGED_REQUEST_ERRORS:
                log.info("further request errors on this connection are logged at debug level")
        else:
            log.debug("request error (%s): %s", exc.code, exc.message)

    # -- timeouts: a silent client must not hold the daemon (and the model's memory)

    def read_timeout(self) -> float | None:
        """How long this client may stay silent now; None while we work for it."""
        if self.tasks:
            return None  # its requests are queued or running: the silence is ours
        if self.receiving is not None:
            return self.limits.stalled_stream
        return self.limits.idle_connection

    def watch(self) -> None:
        timeout = self.read_timeout()
        if timeout is None:  # asked again when the work ends (see track)
            self.watchdog = None
            return
        remaining = self.last_heard + timeout - self.loop.time()
        if remaining > 0:
            self.watchdog = self.loop.call_later(remaining, self.watch)
            return
        self.watchdog = None
        self.time_out(timeout)

    def time_out(self, timeout: float) -> None:
        if self.receiving is not None:
            log.info("dropping a stream that sent nothing for %.0f s", timeout)
            message = f"no audio for {timeout:.0f} s; the request is dropped"
            self.send(ErrorReply(self.receiving.request.id, ErrorCode.TIMEOUT, message))
        else:
            log.info("closing a connection idle for %.0f s", timeout)
        self.abandon()
        transport = self.writer.transport
        if transport.get_write_buffer_size():
            transport.abort()  # a client that reads nothing: do not wait to flush
        else:
            transport.close()

    async def wait_tasks(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass

    def in_flight(self) -> list[RequestId]:
        """Ids of the requests this client still waits for an answer to."""
        ids = [] if self.receiving is None else [self.receiving.request.id]
        ids += [job.request.id for job in self.scheduler.jobs_of(self) if not job.cancelled]
        return ids + [rid for task, rid in self.loads.items() if not task.done()]

    def shut_down(self) -> None:
        """The daemon is stopping: tell the client about each request in flight, drop them."""
        for request_id in self.in_flight():
            self.send(
                ErrorReply(
                    request_id,
                    ErrorCode.SHUTTING_DOWN,
                    "whisperd is stopping; send the request again (a new whisperd starts)",
                )
            )
        self.abandon()

    def abandon(self) -> None:
        """The client is gone: drop what it was sending and what it queued."""
        if self.receiving is not None:
            self.receiving.cancelled = True
            self.receiving = None
        self.scheduler.abandon(self)

    async def announced_audio(self, message: dict[str, Any]) -> bytes | None:
        """The binary frame an ``audio`` message announces; any doubt about it is fatal."""
        if message.get("type") != "audio":
            return None
        rid = loose_request_id(message)
        try:
            size = audio_size(message, rid)
        except ProtocolError as exc:
            if exc.fatal:
                raise
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                "an audio message needs a non-negative integer 'size'; without it the "
                "stream cannot be followed",
                rid,
            ) from None
        payload = await read_frame(self.reader, MAX_AUDIO_FRAME, "audio")
        if payload is None:
            raise ProtocolError(ErrorCode.BAD_FRAME, "connection closed before announced audio")
        if len(payload) != size:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                f"audio frame of {len(payload)} bytes, but {size} were announced",
            )
        return payload

    async def dispatch(self, message: dict[str, Any], audio: bytes | None = None) -> None:
        request = parse_request(message)
        if isinstance(request, Hello):
            self.hello(request)
            return
        if not self.greeted:
            raise ProtocolError(
                ErrorCode.HANDSHAKE_REQUIRED,
                "send {'type': 'hello', 'version': 1} before any other message",
                request.id,
            )
        if isinstance(request, Audio):
            assert audio is not None
            self.audio(request, audio)
        elif isinstance(request, Simple):
            self.simple(request)
        elif isinstance(request, Load):
            self.answer_later(request.id, self.scheduler.load(request.id))
        elif isinstance(request, Transcribe):
            self.transcribe(request)
        elif isinstance(request, End):
            self.end(request)
        elif isinstance(request, Cancel):
            self.cancel(request)

    def answer_later(self, request_id: RequestId, reply: Coroutine[Any, Any, Reply]) -> None:
        task = asyncio.ensure_future(self.reply_when_done(reply))
        self.loads[task] = request_id
        task.add_done_callback(lambda done: self.loads.pop(done, None))
        self.track(task)

    def track(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        task.add_done_callback(self.work_done)

    def work_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not self.tasks and not self.writer.is_closing():
            self.last_heard = self.loop.time()  # the idle time starts after our answer
            self.watch()

    async def reply_when_done(self, reply: Coroutine[Any, Any, Reply]) -> None:
        self.send(await reply)

    def hello(self, request: Hello) -> None:
        if request.version != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol version {request.version} is not supported; this whisperd speaks "
                f"version {PROTOCOL_VERSION}",
                request.id,
            )
        self.greeted = True
        server = f"whisperd/{__version__}"
        self.send(HelloReply(request.id, PROTOCOL_VERSION, server, self.scheduler.limits()))

    def simple(self, request: Simple) -> None:
        if request.type == "ping":
            self.send(Pong(request.id))
        elif request.type == "status":
            self.send(StatusReply(request.id, self.scheduler.status()))
        else:
            self.answer_later(request.id, self.scheduler.unload(request.id))

    def transcribe(self, request: Transcribe) -> None:
        if self.receiving is not None:
            raise ProtocolError(
                ErrorCode.BUSY,
                f"request {self.receiving.request.id!r} is still receiving audio on this "
                "connection; send 'end' first or use another connection",
                request.id,
            )
        self.receiving = self.scheduler.new_job(request, self.send, self)
        self.send(Accepted(request.id))
        self.rewatch()  # a stream's stall timeout may be shorter than the idle one

    def rewatch(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.watch()

    def audio(self, request: Audio, payload: bytes) -> None:
        job = self.receiving_job(request.id)
        try:
            self.scheduler.add_audio(job, payload)
        except ProtocolError:
            self.receiving = None  # the job is cancelled; later audio for it is unknown
            raise

    def receiving_job(self, request_id: RequestId) -> Job:
        if self.receiving is None or self.receiving.request.id != request_id:
            raise ProtocolError(
                ErrorCode.UNKNOWN_REQUEST,
                f"no transcription {request_id!r} is receiving audio on this connection",
                request_id,
            )
        return self.receiving

    def end(self, request: End) -> None:
        job = self.receiving_job(request.id)
        self.receiving = None
        self.track(self.scheduler.submit(job))

    def cancel(self, request: Cancel) -> None:
        if self.receiving is not None and self.receiving.request.id == request.id:
            self.receiving.cancelled = True
            self.receiving = None
        elif not self.scheduler.cancel(self, request.id):
            raise ProtocolError(
                ErrorCode.UNKNOWN_REQUEST, f"no request {request.id!r} to cancel", request.id
            )
        self.send(ErrorReply(request.id, ErrorCode.CANCELLED, "request cancelled"))
