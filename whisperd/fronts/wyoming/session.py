"""One Wyoming connection: its events in, whisperd's replies out as Wyoming events.

A stream (``audio-start`` … ``audio-stop``) becomes one job of the daemon's Scheduler,
exactly as a PCM stream on the Unix socket (whisperd/daemon/connection.py): the audio
size, duration and buffered-audio caps are the scheduler's. With transcript streaming on
the job is a live one, and each commit event (docs/protocol.md, "Live dictation") is sent
as a ``transcript-chunk`` while the audio still arrives. Any error is sent as an
``error`` event and closes the connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong

from whisperd.config import DaemonConfig
from whisperd.daemon.connection import Scheduler
from whisperd.daemon.jobs import Job
from whisperd.daemon.limits import Limits
from whisperd.fronts import Activity
from whisperd.fronts.wyoming import describe
from whisperd.fronts.wyoming.events import WyomingError, encode_event, read_event
from whisperd.protocol import CommitReply, ErrorReply, PcmFormat, ProtocolError, Reply, ResultReply

log = logging.getLogger("whisperd")

_numbers = itertools.count(1)
# A connection that has not sent one whole event yet (a port scan, a stuck client, or
# someone filling the cap) holds its slot this long, not the idle_connection timeout.
# Every Wyoming client speaks at once after connecting (Home Assistant: describe or
# transcribe). One event is enough to get the longer timeout: docs/wyoming.md, "Limits".
FIRST_EVENT_TIMEOUT = 10.0
# After an error event, what the client still sends is read and dropped this long, and at
# most this much, before the connection is closed (Session.linger).
LINGER_SECONDS = 0.5
LINGER_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Served:
    """What every connection of one front shares."""

    scheduler: Scheduler
    activity: Activity
    config: DaemonConfig
    limits: Limits
    streaming: bool


class Session:
    def __init__(
        self, served: Served, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.served = served
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.number = next(_numbers)
        self.streams = 0
        self.asked = describe.Asked()
        self.receiving: Job | None = None
        self.format: PcmFormat | None = None
        self.answering: asyncio.Task[None] | None = None
        self.in_request = False  # between audio-start and its answer: counted as activity
        self.idle = asyncio.Event()  # set while no request is in progress (for stop)
        self.idle.set()
        self.chunks_sent = -1  # -1: transcript-start not sent yet
        self.timer: asyncio.TimerHandle | None = None
        self.spoke = False  # a whole event came in

    # -- the read loop

    async def serve(self) -> None:
        self.rearm()
        try:
            while (event := await read_event(self.reader)) is not None:
                self.spoke = True
                self.dispatch(event)
                self.rearm()
                await self.writer.drain()
        except WyomingError as exc:
            log.info("wyoming: closing a connection after an error (%s): %s", exc.code, exc)
            self.write(Error(text=exc.message, code=exc.code).event())
            await self.linger()
        except (ConnectionError, BrokenPipeError):
            log.info("wyoming: client went away")
        except Exception:  # noqa: BLE001 - one connection's bug must not reach the others
            log.exception("wyoming: unexpected error; closing the connection")
            self.write(Error(text="internal error in whisperd", code="internal").event())
        finally:
            if self.timer is not None:
                self.timer.cancel()
            self.abandon()
            if self.answering is not None:
                await asyncio.gather(self.answering, return_exceptions=True)
            self.end_request()
            await self.close()

    def dispatch(self, event: Event) -> None:
        kind = event.type
        if Describe.is_type(kind):
            self.write(describe.info(self.served.config, self.served.streaming).event())
        elif Ping.is_type(kind):
            self.write(Pong().event())
        elif Transcribe.is_type(kind):
            self.check_idle("transcribe")
            self.asked = describe.parse_transcribe(event.data, self.served.config)
        elif AudioStart.is_type(kind):
            self.start_stream(describe.audio_format(event.data))
        elif AudioChunk.is_type(kind):
            self.audio(describe.audio_format(event.data), event.payload or b"")
        elif AudioStop.is_type(kind):
            self.stop_stream()
        else:  # Wyoming peers drop events they do not know (satellites send many kinds)
            log.debug("wyoming: ignoring a %.64r event", kind)

    def check_idle(self, what: str) -> None:
        if self.receiving is not None or self.answering is not None:
            raise WyomingError(
                "busy",
                f"{what} while a transcription is in progress on this connection: wait for "
                "its transcript, or open another connection",
            )

    # -- one stream: audio-start, audio-chunk..., audio-stop

    def start_stream(self, fmt: PcmFormat) -> None:
        self.check_idle("audio-start")
        self.streams += 1
        request_id = f"wyoming-{self.number}-{self.streams}"
        request = describe.request(request_id, fmt, self.asked, self.served.streaming)
        self.asked = describe.Asked()  # a transcribe event applies to the next stream only
        self.begin_request()
        self.receiving = self.served.scheduler.new_job(request, self.on_reply, self)
        self.format = fmt
        self.chunks_sent = -1

    def audio(self, fmt: PcmFormat, payload: bytes) -> None:
        if self.receiving is None:
            # Some clients send transcribe, then chunks, without audio-start; the reference
            # server (wyoming-faster-whisper) starts the stream at the first chunk too.
            self.start_stream(fmt)
        job = self.receiving
        assert job is not None
        if fmt != self.format:
            raise WyomingError(
                "bad_audio_format", "an audio-chunk's format differs from audio-start's"
            )
        try:
            self.served.scheduler.add_audio(job, payload)
        except ProtocolError as exc:  # over a cap: the scheduler cancelled the job
            self.receiving = None
            raise WyomingError(exc.code, exc.message) from None

    def stop_stream(self) -> None:
        job = self.receiving
        if job is None:
            raise WyomingError("no_stream", "audio-stop without audio-start")
        self.receiving = None
        self.answering = self.served.scheduler.submit(job)
        self.answering.add_done_callback(self.answered)

    def answered(self, _task: asyncio.Task[None]) -> None:
        self.answering = None
        if not self.writer.is_closing():
            self.rearm()  # the idle time starts after our answer

    # -- replies from the scheduler (on the event loop)

    def on_reply(self, reply: Reply) -> None:
        if isinstance(reply, CommitReply):
            self.commit(reply)
        elif isinstance(reply, ResultReply):
            self.result(reply)
        elif isinstance(reply, ErrorReply):
            log.info("wyoming: request %r failed (%s)", reply.id, reply.code)
            self.end_request()
            self.write(Error(text=reply.message, code=reply.code).event())
            self.drop_connection()
        # segment replies: a live client has the same text in the commits

    def commit(self, reply: CommitReply) -> None:
        if not self.served.streaming:
            return
        self.start_transcript()
        if reply.text:  # chunks joined with "" are the transcript: a space before each later one
            self.write(TranscriptChunk(text=(" " if self.chunks_sent else "") + reply.text).event())
            self.chunks_sent += 1

    def start_transcript(self) -> None:
        if self.chunks_sent < 0:
            self.write(TranscriptStart().event())
            self.chunks_sent = 0

    def result(self, reply: ResultReply) -> None:
        self.end_request()  # answered: first, so no client sees its answer while it counts
        text, language = reply.result.get("text", ""), reply.result.get("language") or None
        if self.served.streaming:
            self.start_transcript()
        self.write(Transcript(text=text, language=language).event())
        if self.served.streaming:
            self.write(TranscriptStop().event())

    # -- activity, timeouts, closing

    def begin_request(self) -> None:
        if not self.in_request:
            self.in_request = True
            self.idle.clear()
            self.served.activity.begin()

    def end_request(self) -> None:
        if self.in_request:
            self.in_request = False
            self.idle.set()
            self.served.activity.end()

    def timeout(self) -> float | None:
        """How long the client may stay silent now; None while we work for it."""
        if self.answering is not None:
            return None
        if self.receiving is not None:
            return self.served.limits.stalled_stream
        if not self.spoke:
            return min(FIRST_EVENT_TIMEOUT, self.served.limits.idle_connection)
        return self.served.limits.idle_connection

    def rearm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        seconds = self.timeout()
        if seconds is not None:
            self.timer = self.loop.call_later(seconds, self.time_out, seconds)

    def time_out(self, seconds: float) -> None:
        self.timer = None
        if self.receiving is not None:
            log.info("wyoming: dropping a stream that sent nothing for %.0f s", seconds)
            message = f"no audio for {seconds:.0f} s; the request is dropped"
            self.write(Error(text=message, code="timeout").event())
        else:
            log.info("wyoming: closing a connection idle for %.0f s", seconds)
        self.abandon()
        self.end_request()
        self.drop_connection()

    def shut_down(self) -> None:
        """The daemon is stopping: tell a client waiting for an answer, and close."""
        if self.in_request:
            message = "whisperd is stopping; send the request again (a new whisperd starts)"
            self.write(Error(text=message, code="shutting_down").event())
        self.abandon()
        self.drop_connection()

    def abandon(self) -> None:
        """The client is gone or dropped: cancel what it was sending and what it queued."""
        if self.receiving is not None:
            self.receiving.cancelled = True
            self.receiving = None
        self.served.scheduler.abandon(self)

    def write(self, event: Event) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_event(event))

    def drop_connection(self) -> None:
        transport = self.writer.transport
        if transport.get_write_buffer_size():
            transport.abort()  # a client that reads nothing: do not wait to flush
        else:
            transport.close()

    async def linger(self) -> None:
        """After an error event, read and drop what the client is still sending for a
        moment before closing: a socket closed with bytes unread is reset by the kernel,
        and a client still writing its audio would see "connection reset" instead of the
        error. Bounded in time and bytes; a client that stops or reads nothing ends it."""
        try:
            await asyncio.wait_for(self.writer.drain(), LINGER_SECONDS)
            if self.writer.can_write_eof():
                self.writer.write_eof()
            await asyncio.wait_for(self.discard_input(), LINGER_SECONDS)
        except (OSError, TimeoutError):
            pass  # gone or still sending: close all the same

    async def discard_input(self) -> None:
        dropped = 0
        while dropped < LINGER_MAX_BYTES and (data := await self.reader.read(64 * 1024)):
            dropped += len(data)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), self.served.limits.stop_grace)
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.writer.transport.abort()
