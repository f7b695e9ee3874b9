"""Framing of whisperd's wire format: length-prefixed frames carrying JSON or raw audio.

This module knows nothing about sockets' owners or the engine: it frames, caps and
validates. docs/protocol.md is the contract; keep the two in step.

A frame is a 4-byte unsigned big-endian length followed by that many bytes. A frame is
either a JSON object (a message) or raw audio bytes; it is binary only when the message
right before it announced it (``{"type": "audio", "size": N}``). Every length is checked
against its limit before a single payload byte is read, so no peer can make us allocate
more than the limit.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import asyncio

    from whisperd.protocol.replies import ErrorReply

PROTOCOL_VERSION: Final = 1
HEADER = struct.Struct(">I")

# A JSON message is small: requests carry options, replies carry text and segments.
# Results of long files can be large, so the server-to-client cap is bigger.
MAX_JSON_FRAME: Final = 64 * 1024
MAX_REPLY_FRAME: Final = 16 * 1024 * 1024
MAX_AUDIO_FRAME: Final = 4 * 1024 * 1024
DEFAULT_MAX_AUDIO_BYTES: Final = 256 * 1024 * 1024

PCM_ENCODINGS: Final = {"s16le": 2, "f32le": 4}
MIN_SAMPLE_RATE: Final = 8000
MAX_SAMPLE_RATE: Final = 192000
MAX_CHANNELS: Final = 8


class ErrorCode:
    """Error codes of ``{"type": "error", "code": ..., "message": ...}`` replies."""

    # The connection is closed after these: the byte stream can no longer be trusted.
    BAD_FRAME = "bad_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    FORBIDDEN = "forbidden"
    # Sent instead of serving a connection at all (never raised as a ProtocolError).
    TOO_MANY_CONNECTIONS = "too_many_connections"
    # The connection stays usable after these.
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_TYPE = "unknown_type"
    BAD_FIELD = "bad_field"
    HANDSHAKE_REQUIRED = "handshake_required"
    UNKNOWN_REQUEST = "unknown_request"
    BUSY = "busy"
    AUDIO_TOO_LARGE = "audio_too_large"
    OVERLOADED = "overloaded"
    BAD_AUDIO = "bad_audio"
    MODEL_UNAVAILABLE = "model_unavailable"
    REMOTE_UNAVAILABLE = "remote_unavailable"  # daemon.engine = remote, daemon.fallback = none
    CANCELLED = "cancelled"
    SHUTTING_DOWN = "shutting_down"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


FATAL_CODES: Final = frozenset(
    {
        ErrorCode.BAD_FRAME,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.FORBIDDEN,
    }
)


class ProtocolError(Exception):
    """A violation of the protocol, carried back to the peer as an error message."""

    def __init__(self, code: str, message: str, request_id: RequestId = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def fatal(self) -> bool:
        return self.code in FATAL_CODES

    def to_message(self) -> dict[str, Any]:
        return error_message(self.code, self.message, self.request_id)

    def to_reply(self) -> ErrorReply:
        from whisperd.protocol.replies import ErrorReply

        return ErrorReply(self.request_id, self.code, self.message)


RequestId = str | int | None


def error_message(code: str, message: str, request_id: RequestId = None) -> dict[str, Any]:
    """The JSON of an error reply (replies.ErrorReply gives the same)."""
    return {"type": "error", "id": request_id, "code": code, "message": message}


def encode_frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def encode_message(message: dict[str, Any]) -> bytes:
    return encode_frame(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


def decode_message(payload: bytes) -> dict[str, Any]:
    """Parse a JSON frame into a message object, or raise a recoverable ProtocolError."""
    try:
        value = json.loads(payload.decode("utf-8"))
        # Lone surrogates (\ud800) parse but could never be sent back in a reply.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"frame is not UTF-8 JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:
        # Nesting too deep for the parser, or an integer of thousands of digits.
        raise ProtocolError(ErrorCode.BAD_JSON, f"JSON too complex to accept: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorCode.NOT_OBJECT, f"a message must be a JSON object, got {type(value).__name__}"
        )
    return value


def check_length(length: int, limit: int, what: str) -> None:
    if length > limit:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"{what} frame of {length} bytes exceeds the limit of {limit}",
        )


# --- asyncio side (the daemon) ------------------------------------------------------------


async def read_frame(reader: asyncio.StreamReader, limit: int, what: str) -> bytes | None:
    """Read one frame whose length must not exceed ``limit``; None on a clean EOF."""
    import asyncio  # here, not at the top: clients use this module and must start fast

    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(
            ErrorCode.BAD_FRAME, "connection closed inside a frame header"
        ) from None
    (length,) = HEADER.unpack(header)
    check_length(length, limit, what)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            f"connection closed after {len(exc.partial)} of {length} announced bytes",
        ) from None


# --- blocking side (clients) --------------------------------------------------------------


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(chunks)} of {size} bytes")
        chunks += chunk
    return bytes(chunks)


def recv_message(sock: socket.socket, limit: int = MAX_REPLY_FRAME) -> dict[str, Any]:
    (length,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    check_length(length, limit, "reply")
    return decode_message(recv_exactly(sock, length))


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode_message(message))


def send_audio(sock: socket.socket, request_id: RequestId, data: bytes) -> None:
    """Announce and send one binary audio frame (split by the caller to MAX_AUDIO_FRAME)."""
    sock.sendall(
        encode_message({"type": "audio", "id": request_id, "size": len(data)}) + encode_frame(data)
    )
