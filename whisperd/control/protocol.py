"""The messages of whisperd-keys' control socket, typed, with their encoding.

Frames are whisperd's (whisperd/protocol/framing.py): a 4-byte big-endian length and a
JSON object, at most MAX_JSON_FRAME bytes both ways; no audio frames. Every request is
checked here field by field, so the server only ever sees one of the request classes
below. Standard library only: whisperctl imports this.

Requests (client -> whisperd-keys), one reply each unless said:
- ``{"type": "dictate", "action": "start"|"stop"|"toggle"|"cancel"}`` -> ``ok`` or ``error``
- ``{"type": "status"}`` -> one status event
- ``{"type": "follow", "text": false}`` -> a status event now and one at each change

Over a cap (commands and followers are counted apart) the server sends one
``too_many_connections`` error, saying which cap, and closes: a command is refused on
connecting (possibly before its request arrives), a follower when it asks to follow.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from whisperd.protocol.framing import (
    HEADER,
    MAX_JSON_FRAME,
    ErrorCode,
    ProtocolError,
    check_length,
    decode_message,
    encode_message,
    recv_exactly,
)

SOCKET_NAME: Final = "whisperd-keys.sock"
# Two caps, counted apart: commands (dictate, status, and a connection that has not said
# what it wants yet) and followers (status --follow, held for days by bars). A follower
# leaves the commands' count when it asks to follow, so bars never lock out a shortcut.
MAX_CONNECTIONS: Final = 16
MAX_FOLLOWERS: Final = 16
IDLE_TIMEOUT: Final = 30.0  # seconds a non-follow connection may stay silent
FOLLOW_TICK: Final = 1.0  # seconds between elapsed updates while recording


class Action(StrEnum):
    START = "start"
    STOP = "stop"
    TOGGLE = "toggle"
    CANCEL = "cancel"


class State(StrEnum):
    IDLE = "idle"
    RECORDING = "recording"
    TRANSCRIBING = "transcribing"
    TYPING = "typing"
    ERROR = "error"


class Code:
    """Error codes of control replies (the connection stays usable after each)."""

    BAD_JSON = "bad_json"
    BAD_FIELD = "bad_field"
    UNKNOWN_TYPE = "unknown_type"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    # Sent just before the connection is closed: the byte stream cannot be trusted.
    BAD_FRAME = ErrorCode.BAD_FRAME
    FRAME_TOO_LARGE = ErrorCode.FRAME_TOO_LARGE
    TOO_MANY_CONNECTIONS = ErrorCode.TOO_MANY_CONNECTIONS
    TIMEOUT = ErrorCode.TIMEOUT


class ControlError(Exception):
    """A request that cannot be served; its code and one-line message go to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_message(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


# --- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DictateRequest:
    action: Action

    def to_message(self) -> dict[str, Any]:
        return {"type": "dictate", "action": self.action.value}


@dataclass(frozen=True)
class StatusRequest:
    def to_message(self) -> dict[str, Any]:
        return {"type": "status"}


@dataclass(frozen=True)
class FollowRequest:
    text: bool = False

    def to_message(self) -> dict[str, Any]:
        return {"type": "follow", "text": self.text}


Request = DictateRequest | StatusRequest | FollowRequest


def parse_request(message: dict[str, Any]) -> Request:
    """The typed request of a decoded JSON object; ControlError for anything else."""
    kind = message.get("type")
    if kind == "dictate":
        action = message.get("action")
        choices = ", ".join(a.value for a in Action)
        if not isinstance(action, str) or action not in {a.value for a in Action}:
            raise ControlError(Code.BAD_FIELD, f"dictate needs an action: one of {choices}")
        return DictateRequest(Action(action))
    if kind == "status":
        return StatusRequest()
    if kind == "follow":
        text = message.get("text", False)
        if not isinstance(text, bool):
            raise ControlError(Code.BAD_FIELD, "follow: text must be true or false")
        return FollowRequest(text)
    if not isinstance(kind, str):
        raise ControlError(Code.BAD_FIELD, "a message needs a string field 'type'")
    raise ControlError(Code.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")


def decode_request(payload: bytes) -> Request:
    """Bytes of one frame -> request; ControlError (recoverable) for bad JSON or fields."""
    try:
        message = decode_message(payload)
    except ProtocolError as exc:  # bad_json or not_object: both are "not a message"
        raise ControlError(Code.BAD_JSON, exc.message) from None
    return parse_request(message)


# --- replies ----------------------------------------------------------------------------


def too_many_connections(cap: int) -> str:
    return f"whisperd-keys has too many connections ({cap} commands at once); try again"


def too_many_followers(cap: int) -> str:
    return f"whisperd-keys has too many followers ({cap} `whisperctl status --follow` at once)"


def ok_reply(state: str) -> dict[str, Any]:
    return {"type": "ok", "state": state}


@dataclass(frozen=True)
class Reply:
    """What a client got back: ``ok`` (with a state), ``error`` or a ``status`` event."""

    kind: str
    state: str = ""
    code: str = ""
    message: str = ""
    raw: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.kind in ("ok", "status")


def parse_reply(message: dict[str, Any]) -> Reply:
    """A decoded reply, checked enough that a client can print it; ValueError otherwise."""
    kind = message.get("type")
    if kind == "ok":
        return Reply("ok", state=_text(message, "state"), raw=message)
    if kind == "error":
        return Reply(
            "error", code=_text(message, "code"), message=_text(message, "message"), raw=message
        )
    if kind == "status":
        return Reply("status", state=_text(message, "state"), raw=message)
    raise ValueError(f"unexpected reply type {str(kind)[:40]!r}")


def _text(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise ValueError(f"reply field {key!r} is not a string")
    return value[:500]  # a line on a terminal, whatever the peer sent


# --- blocking framing (clients; the server uses framing.read_frame) ----------------------


def encode(message: dict[str, Any]) -> bytes:
    """One frame; refuses (ValueError) a message over MAX_JSON_FRAME, which the peer would."""
    frame = encode_message(message)
    if len(frame) - HEADER.size > MAX_JSON_FRAME:
        raise ValueError(f"control message of {len(frame)} bytes is over {MAX_JSON_FRAME}")
    return frame


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode(message))


def receive(sock: socket.socket) -> dict[str, Any]:
    """One message; ProtocolError for an oversized or bad frame, ConnectionError on EOF."""
    (length,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    check_length(length, MAX_JSON_FRAME, "control")
    return decode_message(recv_exactly(sock, length))
