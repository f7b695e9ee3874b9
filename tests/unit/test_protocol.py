"""Framing, limits and request parsing (whisperd/protocol.py) against docs/protocol.md."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

import pytest

from whisperd.protocol import (
    FATAL_CODES,
    MAX_AUDIO_FRAME,
    MAX_JSON_FRAME,
    Audio,
    Cancel,
    End,
    ErrorCode,
    Hello,
    Load,
    PcmFormat,
    ProtocolError,
    Simple,
    Transcribe,
    check_length,
    decode_message,
    encode_frame,
    encode_message,
    parse_request,
    read_frame,
    recv_message,
    send_audio,
    send_message,
)

PCM = {"type": "transcribe", "id": 1, "format": "pcm", "encoding": "s16le"}
PCM_OK = {**PCM, "sample_rate": 16000, "channels": 1}


def code_of(message: dict[str, Any]) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_request(message)
    return info.value.code


# --- framing ------------------------------------------------------------------------------


def test_frame_is_u32_big_endian_length_then_payload() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    framed = encode_message({"type": "ping", "id": "é"})
    (length,) = struct.unpack(">I", framed[:4])
    assert length == len(framed) - 4
    assert json.loads(framed[4:].decode("utf-8")) == {"type": "ping", "id": "é"}


def test_limits_match_the_contract() -> None:
    assert MAX_JSON_FRAME == 65536
    assert MAX_AUDIO_FRAME == 4194304
    assert FATAL_CODES == {"bad_frame", "frame_too_large", "unsupported_version", "forbidden"}


def test_check_length() -> None:
    check_length(MAX_JSON_FRAME, MAX_JSON_FRAME, "message")
    with pytest.raises(ProtocolError) as info:
        check_length(MAX_JSON_FRAME + 1, MAX_JSON_FRAME, "message")
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE
    assert info.value.fatal


def reader_with(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def run_read(data: bytes, limit: int = MAX_JSON_FRAME, eof: bool = True) -> bytes | None:
    async def go() -> bytes | None:
        return await read_frame(reader_with(data, eof), limit, "message")

    return asyncio.run(go())


def read_error(data: bytes, limit: int = MAX_JSON_FRAME, eof: bool = True) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        run_read(data, limit, eof)
    return info.value


def test_read_frame_reads_one_frame() -> None:
    assert run_read(encode_frame(b"hello") + encode_frame(b"next")) == b"hello"
    assert run_read(encode_frame(b"")) == b""


def test_read_frame_clean_eof_is_none() -> None:
    assert run_read(b"") is None


@pytest.mark.parametrize("partial", [b"\x00", b"\x00\x00", b"\x00\x00\x01"])
def test_read_frame_truncated_header_is_bad_frame(partial: bytes) -> None:
    error = read_error(partial)
    assert error.code == ErrorCode.BAD_FRAME
    assert error.fatal


def test_read_frame_truncated_payload_is_bad_frame() -> None:
    error = read_error(struct.pack(">I", 10) + b"12345")
    assert error.code == ErrorCode.BAD_FRAME
    assert "5 of 10" in error.message


def test_read_frame_header_only_is_bad_frame() -> None:
    assert read_error(struct.pack(">I", 3)).code == ErrorCode.BAD_FRAME


def test_read_frame_at_the_limit_is_accepted() -> None:
    assert run_read(encode_frame(b"x" * 100), limit=100) == b"x" * 100
    assert read_error(encode_frame(b"x" * 101), limit=100).code == ErrorCode.FRAME_TOO_LARGE


def test_huge_length_is_refused_before_any_payload_is_read() -> None:
    """A header announcing 2**31 bytes, no payload and no EOF: must raise at once."""

    async def go() -> ProtocolError:
        reader = reader_with(struct.pack(">I", 2**31), eof=False)
        with pytest.raises(ProtocolError) as info:
            # Were the payload awaited, this would hang until the timeout fires.
            await asyncio.wait_for(read_frame(reader, MAX_JSON_FRAME, "message"), timeout=5)
        return info.value

    error = asyncio.run(go())
    assert error.code == ErrorCode.FRAME_TOO_LARGE
    assert error.fatal
    assert str(2**31) in error.message


def test_audio_frame_limit() -> None:
    header = struct.pack(">I", MAX_AUDIO_FRAME + 1)

    async def go() -> str:
        reader = reader_with(header, eof=False)
        with pytest.raises(ProtocolError) as info:
            await asyncio.wait_for(read_frame(reader, MAX_AUDIO_FRAME, "audio"), timeout=5)
        return info.value.code

    assert asyncio.run(go()) == ErrorCode.FRAME_TOO_LARGE


# --- decode_message -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload", [b"", b"not json", b"{", b'{"type": "ping"', b"\xff\xfe{}", b'{"a": 1} x']
)
def test_decode_message_bad_json(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(payload)
    assert info.value.code == ErrorCode.BAD_JSON
    assert not info.value.fatal


@pytest.mark.parametrize("payload", [b"[]", b"[1, 2]", b"42", b"1.5", b'"ping"', b"null", b"true"])
def test_decode_message_not_object(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(payload)
    assert info.value.code == ErrorCode.NOT_OBJECT
    assert not info.value.fatal


def test_decode_message_object() -> None:
    assert decode_message('{"type": "ping", "id": "ü"}'.encode()) == {"type": "ping", "id": "ü"}


def test_decode_message_deeply_nested_is_bad_json() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(b"[" * 60000)
    assert info.value.code == ErrorCode.BAD_JSON


def test_decode_message_huge_integer_is_bad_json() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(b'{"type": "ping", "id": ' + b"1" * 5000 + b"}")
    assert info.value.code == ErrorCode.BAD_JSON


def test_lone_surrogate_id_is_refused_or_echoable() -> None:
    try:
        message = decode_message(b'{"type": "ping", "id": "\\ud800"}')
        request = parse_request(message)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_JSON, ErrorCode.BAD_FIELD)
        encode_message(exc.to_message())
        return
    encode_message({"type": "pong", "id": request.id})


# --- parse_request: ids -------------------------------------------------------------------


@pytest.mark.parametrize("rid", ["abc", "", "x" * 200, 0, -5, 2**70, None])
def test_valid_ids(rid: Any) -> None:
    assert parse_request({"type": "ping", "id": rid}) == Simple(rid, "ping")


def test_missing_id_is_null() -> None:
    assert parse_request({"type": "ping"}) == Simple(None, "ping")


@pytest.mark.parametrize("rid", [True, False, 1.5, 1.0, [], {}, ["a"]])
def test_invalid_id_types(rid: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request({"type": "ping", "id": rid})
    assert info.value.code == ErrorCode.BAD_FIELD
    assert info.value.request_id is None
    assert not info.value.fatal


def test_id_longer_than_200_characters() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request({"type": "ping", "id": "x" * 201})
    assert info.value.code == ErrorCode.BAD_FIELD
    assert info.value.request_id is None


def test_errors_carry_the_request_id() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request({"type": "transcribe", "id": "req-9"})
    assert info.value.request_id == "req-9"
    assert info.value.to_message() == {
        "type": "error",
        "id": "req-9",
        "code": "bad_field",
        "message": info.value.message,
    }


# --- parse_request: types -----------------------------------------------------------------


def test_every_request_type() -> None:
    assert parse_request({"type": "hello", "id": 1, "version": 1, "client": "t/1"}) == Hello(
        1, 1, "t/1"
    )
    assert parse_request({"type": "hello", "id": 1, "version": 1}) == Hello(1, 1, "")
    assert parse_request({"type": "hello", "id": 1, "version": 1, "client": 5}).client == ""
    for kind in ("ping", "status", "unload"):
        assert parse_request({"type": kind, "id": 2}) == Simple(2, kind)
    assert parse_request({"type": "load", "id": 3}) == Load(3)
    assert parse_request({"type": "audio", "id": 4, "size": 10}) == Audio(4, 10)
    assert parse_request({"type": "audio", "id": 4, "size": 0}) == Audio(4, 0)
    assert parse_request({"type": "end", "id": 5}) == End(5)
    assert parse_request({"type": "cancel", "id": 6}) == Cancel(6)


def test_transcribe_file_and_pcm() -> None:
    file_req = parse_request({"type": "transcribe", "id": 7, "format": "file"})
    assert file_req == Transcribe(7, "file", None, {})
    pcm_req = parse_request({**PCM, "sample_rate": 44100, "channels": 2, "options": {}})
    assert isinstance(pcm_req, Transcribe)
    assert pcm_req.pcm == PcmFormat("s16le", 44100, 2)
    assert pcm_req.pcm.frame_bytes == 4
    f32 = parse_request({**PCM_OK, "encoding": "f32le", "channels": 8})
    assert isinstance(f32, Transcribe) and f32.pcm is not None
    assert f32.pcm.frame_bytes == 32


def test_all_options_accepted() -> None:
    options = {
        "language": "en",
        "beam_size": 20,
        "without_timestamps": True,
        "initial_prompt": "hello",
        "vad_filter": False,
        "word_timestamps": True,
    }
    request = parse_request({**PCM_OK, "options": options})
    assert isinstance(request, Transcribe)
    assert request.options == options
    assert parse_request({**PCM_OK, "options": {"beam_size": 1}}).options == {"beam_size": 1}


@pytest.mark.parametrize(
    "message",
    [
        {"id": 1},
        {"type": 1},
        {"type": None},
        {"type": ["ping"]},
        {"type": True},
    ],
)
def test_missing_or_bad_type_is_bad_field(message: dict[str, Any]) -> None:
    assert code_of(message) == ErrorCode.BAD_FIELD


@pytest.mark.parametrize("kind", ["", "PING", "pong", "result", "accepted", "hello2", "x" * 500])
def test_unknown_type(kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request({"type": kind, "id": 1})
    assert info.value.code == ErrorCode.UNKNOWN_TYPE
    assert not info.value.fatal
    assert len(info.value.message) < 200  # the echoed type is cut short


@pytest.mark.parametrize(
    "message",
    [
        {"type": "hello", "id": 1},
        {"type": "hello", "id": 1, "version": "1"},
        {"type": "hello", "id": 1, "version": True},
        {"type": "hello", "id": 1, "version": 1.0},
        {"type": "hello", "id": 1, "version": None},
    ],
)
def test_hello_version_field(message: dict[str, Any]) -> None:
    assert code_of(message) == ErrorCode.BAD_FIELD


def test_hello_other_version_parses() -> None:
    # unsupported_version is the daemon's decision; parsing keeps the number.
    assert parse_request({"type": "hello", "version": 2}) == Hello(None, 2, "")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "transcribe", "id": 1},
        {"type": "transcribe", "id": 1, "format": None},
        {"type": "transcribe", "id": 1, "format": 1},
        {"type": "transcribe", "id": 1, "format": "wav"},
        {"type": "transcribe", "id": 1, "format": "FILE"},
        {"type": "transcribe", "id": 1, "format": "pcm"},
        {**PCM_OK, "encoding": "u8"},
        {**PCM_OK, "encoding": "s16be"},
        {**PCM_OK, "encoding": 2},
        {k: v for k, v in PCM_OK.items() if k != "encoding"},
        {k: v for k, v in PCM_OK.items() if k != "sample_rate"},
        {k: v for k, v in PCM_OK.items() if k != "channels"},
        {**PCM_OK, "sample_rate": 1},
        {**PCM_OK, "sample_rate": 7999},
        {**PCM_OK, "sample_rate": 192001},
        {**PCM_OK, "sample_rate": 10**9},
        {**PCM_OK, "sample_rate": 16000.0},
        {**PCM_OK, "sample_rate": "16000"},
        {**PCM_OK, "sample_rate": True},
        {**PCM_OK, "channels": 0},
        {**PCM_OK, "channels": 9},
        {**PCM_OK, "channels": -1},
        {**PCM_OK, "channels": True},
        {**PCM_OK, "channels": 1.0},
        {**PCM_OK, "options": []},
        {**PCM_OK, "options": "beam_size=5"},
        {**PCM_OK, "options": None},
        {**PCM_OK, "options": {"beam_size": 0}},
        {**PCM_OK, "options": {"beam_size": 21}},
        {**PCM_OK, "options": {"beam_size": -1}},
        {**PCM_OK, "options": {"beam_size": True}},
        {**PCM_OK, "options": {"beam_size": 5.0}},
        {**PCM_OK, "options": {"beam_size": "5"}},
        {**PCM_OK, "options": {"language": 1}},
        {**PCM_OK, "options": {"language": None}},
        {**PCM_OK, "options": {"vad_filter": 1}},
        {**PCM_OK, "options": {"vad_filter": "true"}},
        {**PCM_OK, "options": {"without_timestamps": 0}},
        {**PCM_OK, "options": {"word_timestamps": None}},
        {**PCM_OK, "options": {"initial_prompt": ["a"]}},
        {**PCM_OK, "options": {"temperature": 0.0}},
        {**PCM_OK, "options": {"hotwords": "x"}},
        {**PCM_OK, "options": {"Beam_size": 5}},
    ],
)
def test_transcribe_bad_fields(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(message)
    assert info.value.code == ErrorCode.BAD_FIELD
    assert not info.value.fatal
    assert info.value.request_id == 1


def test_bad_field_messages_name_the_problem() -> None:
    def message_of(msg: dict[str, Any]) -> str:
        with pytest.raises(ProtocolError) as info:
            parse_request(msg)
        return info.value.message

    assert "format" in message_of({"type": "transcribe", "id": 1})
    assert "sample_rate 1 " in message_of({**PCM_OK, "sample_rate": 1})
    assert "channels" in message_of({**PCM_OK, "channels": 0})
    assert "u8" in message_of({**PCM_OK, "encoding": "u8"})
    assert "temperature" in message_of({**PCM_OK, "options": {"temperature": 0}})
    assert "beam_size" in message_of({**PCM_OK, "options": {"beam_size": 0}})


def test_pcm_fields_ignored_for_file() -> None:
    request = parse_request({"type": "transcribe", "format": "file", "sample_rate": 1})
    assert isinstance(request, Transcribe) and request.pcm is None


@pytest.mark.parametrize("size", [-1, "10", 1.5, True, None])
def test_audio_bad_size(size: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request({"type": "audio", "id": 1, "size": size})
    assert info.value.code == ErrorCode.BAD_FIELD


def test_audio_size_missing() -> None:
    assert code_of({"type": "audio", "id": 1}) == ErrorCode.BAD_FIELD


def test_audio_size_over_frame_limit_is_fatal() -> None:
    assert parse_request({"type": "audio", "id": 1, "size": MAX_AUDIO_FRAME}) == Audio(
        1, MAX_AUDIO_FRAME
    )
    with pytest.raises(ProtocolError) as info:
        parse_request({"type": "audio", "id": 1, "size": MAX_AUDIO_FRAME + 1})
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE
    assert info.value.fatal


# --- the blocking client side -------------------------------------------------------------


def test_blocking_send_and_receive_round_trip() -> None:
    left, right = socket.socketpair()
    with left, right:
        send_message(left, {"type": "ping", "id": 1})
        send_audio(left, 1, b"\x01\x02\x03")
        assert recv_message(right) == {"type": "ping", "id": 1}
        assert recv_message(right) == {"type": "audio", "id": 1, "size": 3}
        assert right.recv(7) == b"\x00\x00\x00\x03\x01\x02\x03"


def test_recv_message_enforces_reply_limit() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(struct.pack(">I", 2**31))
        right.settimeout(5)
        with pytest.raises(ProtocolError) as info:
            recv_message(right, limit=1024)
        assert info.value.code == ErrorCode.FRAME_TOO_LARGE


def test_recv_message_truncated_reply() -> None:
    left, right = socket.socketpair()
    with right:
        left.sendall(struct.pack(">I", 10) + b"{}")
        left.close()
        with pytest.raises(ConnectionError):
            recv_message(right)
