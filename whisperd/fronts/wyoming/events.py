"""Wyoming events on the wire, read with a bound on every length.

An event is a JSON header line, then ``data_length`` bytes of JSON merged into its
``data``, then ``payload_length`` bytes of payload (audio). The ``wyoming`` package's
``async_read_event`` trusts both lengths: it calls ``readexactly(data_length)`` and
``readexactly(payload_length)`` with whatever number the peer wrote, so a header saying
``"payload_length": 4000000000`` makes it buffer what the client sends up to that size; a
non-integer length raises a TypeError it does not catch, and a header that is not a JSON
object an AttributeError. So events are read here: the header line is bounded by the
stream reader's limit, each length is checked before one byte of what it announces is
read, and anything malformed is a ``WyomingError``. Events are still the package's
``Event`` objects, and are written with its own ``write_event``.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any, Final

from wyoming.event import Event, write_event

from whisperd.protocol import MAX_AUDIO_FRAME, MAX_JSON_FRAME, ProtocolError, decode_message

# The header line (the stream reader's limit) and the `data` JSON: options and audio
# formats are a few hundred bytes; the Unix socket's message cap is plenty.
MAX_HEADER: Final = MAX_JSON_FRAME
MAX_DATA: Final = MAX_JSON_FRAME
# One event's payload: an audio chunk (Home Assistant sends 2 KiB ones). The Unix
# socket's audio frame cap; the whole request is capped by daemon.max_audio_bytes.
MAX_PAYLOAD: Final = MAX_AUDIO_FRAME
MAX_TYPE_CHARS: Final = 64


class WyomingError(Exception):
    """A client error: sent back as an ``error`` event, then the connection is closed
    (Wyoming has no request ids, so a stream in doubt cannot be followed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        return decode_message(raw)
    except ProtocolError as exc:
        raise WyomingError("bad_event", f"the event's {what} is not a JSON object: {exc}") from None


def _length(header: dict[str, Any], name: str, limit: int) -> int:
    value = header.get(name)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WyomingError("bad_event", f"{name} must be a non-negative integer")
    if value > limit:
        raise WyomingError("too_large", f"{name} of {value} bytes exceeds the limit of {limit}")
    return value


async def _exactly(reader: asyncio.StreamReader, size: int, what: str) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise WyomingError(
            "bad_event", f"connection closed after {len(exc.partial)} of {size} bytes of {what}"
        ) from None


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, None on a clean end of stream; WyomingError for anything else.
    ``reader`` must have been made with ``limit=MAX_HEADER``."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's LimitOverrunError, as readline raises it
        raise WyomingError("too_large", f"an event header longer than {MAX_HEADER} bytes") from None
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise WyomingError("bad_event", "connection closed inside an event header")
    header = _json_object(line, "header")
    kind = header.get("type")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_TYPE_CHARS:
        raise WyomingError("bad_event", "the event's 'type' must be a short string")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise WyomingError("bad_event", "the event's 'data' must be a JSON object")
    data_length = _length(header, "data_length", MAX_DATA)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD)
    if data_length:
        data.update(_json_object(await _exactly(reader, data_length, "data"), "data"))
    payload = await _exactly(reader, payload_length, "payload") if payload_length else None
    return Event(type=kind, data=data, payload=payload)


def encode_event(event: Event) -> bytes:
    """The bytes of one event, framed by the wyoming package itself (its synchronous
    writer into a buffer: replies are sent from a synchronous sink)."""
    buffer = io.BytesIO()
    write_event(event, buffer)
    return buffer.getvalue()
