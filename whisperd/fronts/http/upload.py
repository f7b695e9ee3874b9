"""Reading a transcription request's multipart form as it streams in: the text fields
(bounded), and the ``file`` part handed on chunk by chunk, so that the audio cap is
checked with a running byte count and a too-large upload is refused before it is read
entirely. A client silent for too long in the middle of its body is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import BodyPartReader, web

from whisperd.fronts.http.errors import ApiError

CHUNK = 256 * 1024
MAX_FIELD_BYTES = 8 * 1024  # a prompt of Whisper's 224 tokens fits many times over
MAX_FIELDS = 32
# The form's bytes besides the file (boundaries, part headers, the fields).
FORM_OVERHEAD = MAX_FIELDS * (MAX_FIELD_BYTES + 1024)
REPEATED = ("timestamp_granularities[]", "include[]")
T = TypeVar("T")


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    repeated: dict[str, list[str]] = field(default_factory=dict)
    has_file: bool = False
    file_bytes: int = 0


FileSink = Callable[[bytes], None]  # takes the file's next chunk; raises ApiError to refuse


async def read_form(request: web.Request, feed: FileSink, stall: float) -> Form:
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
            part = await within(stall, reader.next())
            if part is None:
                return form
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "nested multipart bodies are not accepted", "invalid_form")
            await read_part(part, form, feed, stall)
    except (ValueError, AssertionError) as exc:  # aiohttp's words for a malformed body
        raise ApiError(400, f"malformed multipart body: {str(exc)[:120]}", "invalid_form") from None
    raise ApiError(400, f"more than {MAX_FIELDS} form fields", "invalid_form")


async def read_part(part: BodyPartReader, form: Form, feed: FileSink, stall: float) -> None:
    name = part.name or ""
    if name == "file":
        if form.has_file:
            raise ApiError(400, "more than one 'file' part", "invalid_form", "file")
        form.has_file = True
        while chunk := await within(stall, part.read_chunk(CHUNK)):
            form.file_bytes += len(chunk)
            feed(chunk)
        return
    value = await read_field(part, name, stall)
    if name in REPEATED:
        form.repeated.setdefault(name, []).append(value)
    elif name in form.fields:
        raise ApiError(400, f"the field {name!r:.40} is given twice", "invalid_form", name[:40])
    else:
        form.fields[name] = value


async def read_field(part: BodyPartReader, name: str, stall: float) -> str:
    data = b""
    while chunk := await within(stall, part.read_chunk(MAX_FIELD_BYTES)):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise ApiError(
                400, f"the field {name!r:.40} is over {MAX_FIELD_BYTES} bytes", "invalid_form"
            )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"the field {name!r:.40} is not UTF-8", "invalid_form") from None


async def within(stall: float, step: Awaitable[T]) -> T:
    """One read of the body, which must bring something within ``stall`` seconds."""
    try:
        async with asyncio.timeout(stall):
            return await step
    except TimeoutError:
        raise ApiError(
            408, f"the upload sent nothing for {stall:.0f} s; the request is dropped", "timeout"
        ) from None
