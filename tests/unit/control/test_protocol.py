"""The control socket's messages: every request shape, and what hostile JSON gets back."""

from __future__ import annotations

import socket
import struct

import pytest

from whisperd.control.protocol import (
    Action,
    Code,
    ControlError,
    DictateRequest,
    FollowRequest,
    StatusRequest,
    decode_request,
    encode,
    ok_reply,
    parse_reply,
    parse_request,
    receive,
    send,
)
from whisperd.protocol.framing import MAX_JSON_FRAME, ProtocolError


@pytest.mark.parametrize("action", ["start", "stop", "toggle", "cancel"])
def test_dictate_actions_round_trip(action: str) -> None:
    request = DictateRequest(Action(action))
    assert parse_request(request.to_message()) == request


def test_status_and_follow_round_trip() -> None:
    assert parse_request(StatusRequest().to_message()) == StatusRequest()
    assert parse_request({"type": "follow"}) == FollowRequest(text=False)
    assert parse_request(FollowRequest(text=True).to_message()) == FollowRequest(text=True)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "dictate"}, Code.BAD_FIELD),
        ({"type": "dictate", "action": "START"}, Code.BAD_FIELD),
        ({"type": "dictate", "action": ["start"]}, Code.BAD_FIELD),
        ({"type": "follow", "text": 1}, Code.BAD_FIELD),
        ({"type": "follow", "text": "yes"}, Code.BAD_FIELD),
        ({"type": 3}, Code.BAD_FIELD),
        ({}, Code.BAD_FIELD),
        ({"type": "transcribe"}, Code.UNKNOWN_TYPE),
        ({"type": "x" * 10000}, Code.UNKNOWN_TYPE),
    ],
)
def test_bad_requests_are_refused_with_a_code(message: dict[str, object], code: str) -> None:
    with pytest.raises(ControlError) as caught:
        parse_request(message)
    assert caught.value.code == code
    assert len(caught.value.message) < 200  # a long type is not echoed back in full
    assert caught.value.to_message()["type"] == "error"


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"\xff\xfe", b"[1,2]", b'"dictate"', b"null", b'{"type":"\\ud800"}', b"[" * 100000],
)
def test_undecodable_frames_are_bad_json(payload: bytes) -> None:
    with pytest.raises(ControlError) as caught:
        decode_request(payload)
    assert caught.value.code == Code.BAD_JSON


def test_replies_parse() -> None:
    assert parse_reply(ok_reply("recording")).state == "recording"
    error = parse_reply(ControlError(Code.BUSY, "typing").to_message())
    assert (error.ok, error.code, error.message) == (False, "busy", "typing")
    status = parse_reply({"type": "status", "state": "idle", "since": 1.0})
    assert status.ok and status.state == "idle"
    for bad in ({"type": "ok"}, {"type": "what"}, {"type": "error", "code": 1, "message": ""}):
        with pytest.raises(ValueError):
            parse_reply(bad)


def test_frames_over_the_cap_are_refused_both_ways() -> None:
    with pytest.raises(ValueError):
        encode({"type": "status", "pad": "x" * MAX_JSON_FRAME})
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", MAX_JSON_FRAME + 1))
        with pytest.raises(ProtocolError):
            receive(b)  # refused from the header, before reading the payload


def test_send_and_receive_over_a_socket() -> None:
    a, b = socket.socketpair()
    with a, b:
        send(a, DictateRequest(Action.TOGGLE).to_message())
        assert decode_request(encode(receive(b))[4:]) == DictateRequest(Action.TOGGLE)
