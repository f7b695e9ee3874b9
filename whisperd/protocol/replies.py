"""Typed replies, like the requests: one frozen dataclass per reply type."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final

from whisperd.protocol.framing import RequestId, encode_message

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
    pending: bool  # a transcription runs: the model goes when it ends


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
