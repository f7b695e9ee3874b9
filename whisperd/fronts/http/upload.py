"""Reading a transcription request's multipart form as it streams in: the text fields
(bounded), and the ``file`` part handed on chunk by chunk, so that the audio cap is
checked with a running byte count and a too-large upload is refused before it is read
entirely. A client silent for too long in the middle of its body is dropped, and so is
one that sends a little now and then but too slowly overall: an upload that never ends
would hold the daemon (and the model's memory) for ever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from whisperd.fronts.http.errors import ApiError

CHUNK = 256 * 1024
MAX_FIELD_BYTES = 8 * 1024  # a prompt of Whisper's 224 tokens fits many times over
MAX_FIELDS = 32
# The form's bytes besides the file (boundaries, part headers, the fields).
FORM_OVERHEAD = MAX_FIELDS * (MAX_FIELD_BYTES + 1024)
REPEATED = ("timestamp_granularities[]", "include[]")
# The slowest upload accepted, on average over the whole body (512 kbit/s): slow links
# are served, and an upload that trickles in to hold the daemon ends in bounded time.
MIN_UPLOAD_RATE = 64 * 1024
# What aiohttp raises for a malformed form or body: a part header line over 8190 bytes, a
# broken chunked encoding, a body cut short, a bad boundary.
MALFORMED = (ValueError, AssertionError, HttpProcessingError, web.RequestPayloadError)
T = TypeVar("T")


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    repeated: dict[str, list[str]] = field(default_factory=dict)
    has_file: bool = False
    file_bytes: int = 0


FileSink = Callable[[bytes], None]  # takes the file's next chunk; raises ApiError to refuse


class Pace:
    """How long the body may take: each read must bring something within ``stall`` s,
    and the whole ``length`` bytes must be in by ``stall`` s plus their time at
    MIN_UPLOAD_RATE, counted from the request's headers."""

    def __init__(self, stall: float, length: int) -> None:
        self.stall = stall
        self.length = length
        self.allowed = stall + length / MIN_UPLOAD_RATE
        self.deadline = time.monotonic() + self.allowed

    async def within(self, step: Awaitable[T]) -> T:
        """One read of the body, within the stall limit and the whole body's deadline."""
        left = self.deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, min(self.stall, left))):
                return await step
        except TimeoutError:
            raise self.timed_out(overall=left < self.stall) from None

    def timed_out(self, overall: bool) -> ApiError:
        if not overall:
            message = f"the upload sent nothing for {self.stall:.0f} s; the request is dropped"
        else:
            message = (
                f"the upload of {self.length} bytes took over {self.allowed:.0f} s (slower "
                f"than {MIN_UPLOAD_RATE // 1024} KiB/s on average); the request is dropped"
            )
        return ApiError(408, message, "timeout")


async def read_form(request: web.Request, feed: FileSink, pace: Pace) -> Form:
    """The form's fields; the file's bytes go to ``feed`` as they arrive."""
    if request.content_type != "multipart/form-data":
        raise ApiError(
            400,
            "send the audio as multipart/form-data with a 'file' part "
            f"(got {request.content_type or 'no content type'})",
            "invalid_content_type",
        )
    try:
        reader = await request.multipart()
        form = Form()
        for _ in range(MAX_FIELDS + 1):
            part = await pace.within(reader.next())
            if part is None:
                return form
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "nested multipart bodies are not accepted", "invalid_form")
            await read_part(part, form, feed, pace)
    except MALFORMED as exc:
        raise ApiError(400, f"malformed multipart body: {malformed(exc)}", "invalid_form") from None
    raise ApiError(400, f"more than {MAX_FIELDS} form fields", "invalid_form")


def malformed(exc: Exception) -> str:
    """What was wrong, from aiohttp's words for the form (the multipart reader's) or only
    the kind of error (the HTTP parser's words can quote a long line of the client's)."""
    if isinstance(exc, (ValueError, AssertionError)):
        return str(exc)[:120]
    return type(exc).__name__


async def read_part(part: BodyPartReader, form: Form, feed: FileSink, pace: Pace) -> None:
    name = part.name or ""
    if name == "file":
        if form.has_file:
            raise ApiError(400, "more than one 'file' part", "invalid_form", "file")
        form.has_file = True
        while chunk := await pace.within(part.read_chunk(CHUNK)):
            form.file_bytes += len(chunk)
            feed(chunk)
        return
    value = await read_field(part, name, pace)
    if name in REPEATED:
        form.repeated.setdefault(name, []).append(value)
    elif name in form.fields:
        raise ApiError(400, f"the field {name!r:.40} is given twice", "invalid_form", name[:40])
    else:
        form.fields[name] = value


async def read_field(part: BodyPartReader, name: str, pace: Pace) -> str:
    data = b""
    while chunk := await pace.within(part.read_chunk(MAX_FIELD_BYTES)):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise ApiError(
                400, f"the field {name!r:.40} is over {MAX_FIELD_BYTES} bytes", "invalid_form"
            )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"the field {name!r:.40} is not UTF-8", "invalid_form") from None
