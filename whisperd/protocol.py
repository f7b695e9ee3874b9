"""Wire format of whisperd: length-prefixed frames carrying JSON messages or raw audio.

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
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Final

if TYPE_CHECKING:
    import asyncio

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
    BAD_AUDIO = "bad_audio"
    MODEL_UNAVAILABLE = "model_unavailable"
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
        return ErrorReply(self.request_id, self.code, self.message)


RequestId = str | int | None


def error_message(code: str, message: str, request_id: RequestId = None) -> dict[str, Any]:
    return reply_message(ErrorReply(request_id, code, message))


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


@dataclass(frozen=True)
class PcmFormat:
    encoding: str
    sample_rate: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return PCM_ENCODINGS[self.encoding] * self.channels


# --- typed requests -----------------------------------------------------------------------

TRANSCRIBE_OPTION_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "language": (str,),
    "beam_size": (int,),
    "without_timestamps": (bool,),
    "initial_prompt": (str,),
    "vad_filter": (bool,),
    "word_timestamps": (bool,),
    "fast_short_audio": (bool,),
    "live": (bool,),  # PCM streams only: commit events while the audio streams in
}


@dataclass(frozen=True)
class Hello:
    id: RequestId
    version: int
    client: str


@dataclass(frozen=True)
class Simple:
    """ping, status, unload: a type and an id, nothing else."""

    id: RequestId
    type: str


@dataclass(frozen=True)
class Load:
    id: RequestId


@dataclass(frozen=True)
class Transcribe:
    id: RequestId
    format: str  # "file" or "pcm"
    pcm: PcmFormat | None
    options: dict[str, Any]


@dataclass(frozen=True)
class Audio:
    id: RequestId
    size: int


@dataclass(frozen=True)
class End:
    id: RequestId


@dataclass(frozen=True)
class Cancel:
    id: RequestId


Request = Hello | Simple | Load | Transcribe | Audio | End | Cancel


def _field(msg: dict[str, Any], name: str, kinds: tuple[type, ...], rid: RequestId) -> Any:
    if name not in msg:
        raise ProtocolError(ErrorCode.BAD_FIELD, f"missing field {name!r}", rid)
    value = msg[name]
    # bool is an int in Python; a JSON true must not pass for a number.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ProtocolError(
            ErrorCode.BAD_FIELD, f"field {name!r} must be {names}, got {value!r:.40}", rid
        )
    return value


def _request_id(msg: dict[str, Any]) -> RequestId:
    rid = msg.get("id")
    if rid is None or (isinstance(rid, str | int) and not isinstance(rid, bool)):
        if isinstance(rid, str) and len(rid) > 200:
            raise ProtocolError(ErrorCode.BAD_FIELD, "field 'id' is longer than 200 characters")
        return rid
    raise ProtocolError(ErrorCode.BAD_FIELD, "field 'id' must be a string, an integer or null")


def _pcm_format(msg: dict[str, Any], rid: RequestId) -> PcmFormat:
    encoding = _field(msg, "encoding", (str,), rid)
    if encoding not in PCM_ENCODINGS:
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"encoding {encoding!r} is not one of {', '.join(sorted(PCM_ENCODINGS))}",
            rid,
        )
    rate = _field(msg, "sample_rate", (int,), rid)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"sample_rate {rate} is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
            rid,
        )
    channels = _field(msg, "channels", (int,), rid)
    if not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError(
            ErrorCode.BAD_FIELD, f"channels {channels} is outside 1..{MAX_CHANNELS}", rid
        )
    return PcmFormat(encoding, rate, channels)


def _transcribe_options(msg: dict[str, Any], rid: RequestId) -> dict[str, Any]:
    raw = msg.get("options", {})
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_FIELD, "field 'options' must be an object", rid)
    options: dict[str, Any] = {}
    for name in raw:
        if name not in TRANSCRIBE_OPTION_TYPES:
            known = ", ".join(sorted(TRANSCRIBE_OPTION_TYPES))
            raise ProtocolError(
                ErrorCode.BAD_FIELD, f"unknown option {name!r:.40} (known: {known})", rid
            )
        options[name] = _field(raw, name, TRANSCRIBE_OPTION_TYPES[name], rid)
    beam = options.get("beam_size")
    if beam is not None and not 1 <= beam <= 20:
        raise ProtocolError(ErrorCode.BAD_FIELD, "option 'beam_size' must be within 1..20", rid)
    return options


def audio_size(msg: dict[str, Any], rid: RequestId) -> int:
    """The size of the binary frame an ``audio`` message announces: the one place it is
    checked. Over-size frames are fatal: the bytes cannot be skipped without reading them."""
    size = _field(msg, "size", (int,), rid)
    if size < 0:
        raise ProtocolError(ErrorCode.BAD_FIELD, "field 'size' must not be negative", rid)
    check_length(size, MAX_AUDIO_FRAME, "audio")
    return int(size)


def loose_request_id(msg: dict[str, Any]) -> RequestId:
    """The message's id when it is a valid one, else None (for errors about the frame)."""
    rid = msg.get("id")
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None


def parse_request(msg: dict[str, Any]) -> Request:
    """Turn a decoded message into a typed request, or raise a recoverable ProtocolError."""
    rid = _request_id(msg)
    kind = _field(msg, "type", (str,), rid)
    if kind == "hello":
        version = _field(msg, "version", (int,), rid)
        client = msg.get("client", "")
        return Hello(rid, version, client if isinstance(client, str) else "")
    if kind in ("ping", "status", "unload"):
        return Simple(rid, kind)
    if kind == "load":
        return Load(rid)
    if kind == "transcribe":
        fmt = _field(msg, "format", (str,), rid)
        if fmt not in ("file", "pcm"):
            raise ProtocolError(
                ErrorCode.BAD_FIELD, f"format must be 'file' or 'pcm', got {fmt!r:.40}", rid
            )
        pcm = _pcm_format(msg, rid) if fmt == "pcm" else None
        options = _transcribe_options(msg, rid)
        if options.get("live") and pcm is None:
            raise ProtocolError(ErrorCode.BAD_FIELD, "option 'live' needs format 'pcm'", rid)
        return Transcribe(rid, fmt, pcm, options)
    if kind == "audio":
        return Audio(rid, audio_size(msg, rid))
    if kind == "end":
        return End(rid)
    if kind == "cancel":
        return Cancel(rid)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r:.40}", rid)


# --- typed replies ------------------------------------------------------------------------
# Each reply is a dataclass; ``reply_message`` turns it into the JSON object of
# docs/protocol.md: ``type`` first, then the fields in order. A field marked FLATTEN is a
# group of keys written inline (a result's text and segments, the engine's description).

FLATTEN: Final = {"flatten": True}


@dataclass(frozen=True)
class HelloReply:
    TYPE: ClassVar[str] = "hello"
    id: RequestId
    version: int
    server: str
    limits: dict[str, int]


@dataclass(frozen=True)
class Pong:
    TYPE: ClassVar[str] = "pong"
    id: RequestId


@dataclass(frozen=True)
class StatusReply:
    TYPE: ClassVar[str] = "status"
    id: RequestId
    status: dict[str, Any] = field(metadata=FLATTEN)


@dataclass(frozen=True)
class Accepted:
    TYPE: ClassVar[str] = "accepted"
    id: RequestId


@dataclass(frozen=True)
class Loaded:
    TYPE: ClassVar[str] = "loaded"
    id: RequestId
    load_seconds: float
    waited: float
    engine: dict[str, Any] = field(metadata=FLATTEN)


@dataclass(frozen=True)
class Unloaded:
    TYPE: ClassVar[str] = "unloaded"
    id: RequestId
    was_loaded: bool


@dataclass(frozen=True)
class SegmentReply:
    TYPE: ClassVar[str] = "segment"
    id: RequestId
    segment: dict[str, Any] = field(metadata=FLATTEN)  # start, end, text


@dataclass(frozen=True)
class CommitReply:
    """A piece of a live stream's text, final (docs/protocol.md, "Live dictation")."""

    TYPE: ClassVar[str] = "commit"
    id: RequestId
    seq: int
    text: str
    start: float
    end: float
    final: bool


@dataclass(frozen=True)
class ResultReply:
    TYPE: ClassVar[str] = "result"
    id: RequestId
    result: dict[str, Any] = field(metadata=FLATTEN)  # text, segments, language, ...
    draft: bool
    packed: int
    timings: dict[str, float]
    engine: dict[str, Any] = field(metadata=FLATTEN)


@dataclass(frozen=True)
class ErrorReply:
    TYPE: ClassVar[str] = "error"
    id: RequestId
    code: str
    message: str


Reply = (
    HelloReply
    | Pong
    | StatusReply
    | Accepted
    | Loaded
    | Unloaded
    | SegmentReply
    | CommitReply
    | ResultReply
    | ErrorReply
)


def reply_message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"type": reply.TYPE}
    for item in fields(reply):
        value = getattr(reply, item.name)
        if item.metadata.get("flatten"):
            message.update(value)
        else:
            message[item.name] = value
    return message


def encode_reply(reply: Reply) -> bytes:
    return encode_message(reply_message(reply))
