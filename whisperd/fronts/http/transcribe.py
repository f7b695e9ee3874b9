"""One ``POST /v1/audio/transcriptions``: the upload becomes a whisperd job as it arrives
(the scheduler checks the audio caps as on the Unix socket), the job runs like any other,
and its replies become the response (or, with ``stream=true``, server-sent events)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp import web

from whisperd.daemon.connection import Scheduler
from whisperd.daemon.jobs import Job
from whisperd.fronts.http import formats, options
from whisperd.fronts.http.errors import ApiError, from_whisperd, sse_error
from whisperd.fronts.http.upload import Pace, read_form
from whisperd.protocol import (
    ErrorCode,
    ErrorReply,
    ProtocolError,
    Reply,
    ResultReply,
    SegmentReply,
    Transcribe,
)

_numbers = itertools.count(1)


class Transcription:
    """The state of one request: its job, and the queue its replies arrive on."""

    def __init__(self, scheduler: Scheduler, stall: float) -> None:
        self.scheduler = scheduler
        self.stall = stall
        self.id = f"http-{next(_numbers)}"
        self.options: dict[str, Any] = {}  # filled from the form before the job is queued
        self.replies: asyncio.Queue[Reply] = asyncio.Queue()
        self.job: Job | None = None
        self.given_up: ApiError | None = None  # the daemon stops: what the client is told

    def feed(self, chunk: bytes) -> None:
        """The file's next bytes, into the job (made at the first chunk): the daemon-wide
        and per-request caps are checked here, with the running byte count."""
        if self.given_up is not None:
            raise self.given_up
        if self.job is None:
            request = Transcribe(self.id, "file", None, self.options)
            self.job = self.scheduler.new_job(request, self.replies.put_nowait, self)
        try:
            self.scheduler.add_audio(self.job, chunk)
        except ProtocolError as exc:
            raise from_whisperd(exc.code, exc.message) from None

    def give_up(self, code: str = ErrorCode.CANCELLED, message: str = "") -> None:
        """The client is gone or the daemon stops: drop the job wherever it is, and tell a
        handler still waiting (``message``)."""
        if self.job is not None:
            self.job.cancelled = True
        self.scheduler.abandon(self)
        if message:
            self.given_up = from_whisperd(code, message)
            self.replies.put_nowait(ErrorReply(self.id, code, message))

    async def read(self, request: web.Request, max_body: int) -> options.Request:
        """The form read, its file fed to the job; ``max_body`` bounds the time taken by
        a body of unknown length (its length bounds the time otherwise)."""
        length = request.content_length
        pace = Pace(self.stall, max_body if length is None else min(length, max_body))
        form = await read_form(request, self.feed, pace)
        if not form.has_file or self.job is None:
            raise ApiError(
                400,
                "the form has no audio: send it as the 'file' part"
                + (" (it was empty)" if form.has_file else ""),
                "missing_file" if not form.has_file else "empty_file",
                "file",
            )
        parsed = options.parse(form)
        self.options.update(parsed.options)  # the job's options are read when it runs
        return parsed

    async def result(self) -> dict[str, Any]:
        """The result's message (text, segments, ...), or the job's error as ApiError."""
        while True:
            reply = await self.replies.get()
            if isinstance(reply, ResultReply):
                return reply.result
            if isinstance(reply, ErrorReply):
                raise from_whisperd(reply.code, reply.message)


async def answer(
    request: web.Request, transcription: Transcription, parsed: options.Request
) -> web.StreamResponse:
    assert transcription.job is not None
    if transcription.given_up is not None:
        raise transcription.given_up  # the daemon stops: do not queue (or load) for it
    transcription.scheduler.submit(transcription.job)
    if parsed.stream:
        return await stream(request, transcription)
    result = await transcription.result()
    try:
        body, content_type = formats.render(result, parsed.response_format, parsed.granularities)
    except formats.NoWords:
        raise ApiError(
            400,
            "this whisperd transcribes with an engine that reports no word timestamps "
            "(a remote engine); ask for timestamp_granularities[]=segment",
            "unsupported_value",
            "timestamp_granularities",
        ) from None
    return web.Response(text=body, content_type=content_type, charset="utf-8")


async def stream(request: web.Request, transcription: Transcription) -> web.StreamResponse:
    """Server-sent events as OpenAI streams a transcription: ``transcript.text.delta`` for
    each segment as it is decoded, then ``transcript.text.done`` with the whole text."""
    response = web.StreamResponse(headers={"Cache-Control": "no-cache"})
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    await response.prepare(request)
    first = True
    while True:
        reply = await transcription.replies.get()
        if isinstance(reply, SegmentReply):
            event = formats.delta_event(str(reply.segment.get("text", "")), first)
            if event is not None:
                first = False
                await response.write(event)
        elif isinstance(reply, ResultReply):
            await response.write(formats.done_event(reply.result))
            break
        elif isinstance(reply, ErrorReply):
            await response.write(sse_error(from_whisperd(reply.code, reply.message)))
            break
    await response.write_eof()
    return response
