"""Bad input against a real whisperd: every error of docs/protocol.md, and the daemon survives.

After each case the test checks the error code, whether the connection was closed or is
still usable (a ping on the same connection), and that a fresh client still gets a pong
and a correct transcription of jfk.flac.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import audio_fuzz, wire
from tests.conftest import RunningDaemon, shared_audio, start_daemon, stop_daemon
from tests.integration.support import (
    assert_healthy,
    collect,
    connect,
    jfk_bytes,
    pcm_fields,
    ping,
    send_audio,
    start,
    transcribe,
)

MB4 = 4 * 1024 * 1024


def recv_error(sock: socket.socket) -> dict[str, Any]:
    reply = wire.recv(sock)
    assert reply["type"] == "error", reply
    assert isinstance(reply["message"], str) and reply["message"], reply
    return reply


def assert_closed(sock: socket.socket) -> None:
    sock.settimeout(20)
    assert wire.closed_by_peer(sock), "the daemon kept a connection it should have closed"


def assert_usable(sock: socket.socket) -> None:
    ping(sock, "after")


# --- closing errors -------------------------------------------------------------------------

FATAL_CASES: dict[str, tuple[bytes, str]] = {
    "garbage_bytes": (b"\xde\xad\xbe\xef" * 64, "frame_too_large"),
    "http_request": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "frame_too_large"),
    "message_over_limit_header_only": (struct.pack(">I", 65537), "frame_too_large"),
    "message_2_31_header_only": (struct.pack(">I", 2**31), "frame_too_large"),
    "max_u32_length": (b"\xff\xff\xff\xff" + b"x" * 100, "frame_too_large"),
    "audio_size_over_frame_limit": (
        wire.msg({"type": "transcribe", "id": 1, "format": "file"})
        + wire.msg({"type": "audio", "id": 1, "size": MB4 + 1}),
        "frame_too_large",
    ),
    "audio_frame_over_limit_after_good_announce": (
        wire.msg({"type": "transcribe", "id": 1, "format": "file"})
        + wire.msg({"type": "audio", "id": 1, "size": 100})
        + struct.pack(">I", MB4 + 1),
        "frame_too_large",
    ),
    "audio_frame_shorter_than_announced": (
        wire.msg({"type": "transcribe", "id": 1, "format": "file"})
        + wire.msg({"type": "audio", "id": 1, "size": 1000})
        + wire.frame(b"\x00" * 500),
        "bad_frame",
    ),
    "audio_frame_longer_than_announced": (
        wire.msg({"type": "transcribe", "id": 1, "format": "file"})
        + wire.msg({"type": "audio", "id": 1, "size": 1000})
        + wire.frame(b"\x00" * 2000),
        "bad_frame",
    ),
    # Without a usable size the next frame cannot be placed: the stream is lost.
    "audio_size_not_a_number": (
        wire.msg({"type": "audio", "id": "a", "size": "10"}) + wire.frame(b"0123456789"),
        "bad_frame",
    ),
    "audio_size_negative": (
        wire.msg({"type": "audio", "id": "a", "size": -1}) + wire.frame(b""),
        "bad_frame",
    ),
    "wrong_version": (wire.msg({"type": "hello", "id": "v", "version": 2}), "unsupported_version"),
    "version_zero": (wire.msg({"type": "hello", "id": "v", "version": 0}), "unsupported_version"),
}


@pytest.mark.parametrize("case", sorted(FATAL_CASES))
def test_closing_errors(daemon: RunningDaemon, case: str) -> None:
    data, code = FATAL_CASES[case]
    greet = not case.startswith(("wrong_version", "version_zero"))
    with connect(daemon, greet=greet, timeout=20) as sock:
        # No shutdown and no payload after an over-long header: the daemon must answer
        # without waiting for bytes that never come (the socket timeout would fire).
        sock.sendall(data)
        replies = []
        while True:
            reply = wire.recv(sock)
            if reply["type"] != "accepted":
                break
            replies.append(reply)
        assert reply["type"] == "error", reply
        assert reply["code"] == code, reply
        if code == "unsupported_version":
            assert reply["id"] == "v"
        assert_closed(sock)
    assert_healthy(daemon)


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"\x00", "header"),
        (b"\x00\x00\x01", "header"),
        (struct.pack(">I", 50), "0 of 50"),
        (struct.pack(">I", 50) + b'{"type": "pi', "12 of 50"),
    ],
    ids=["one_byte", "three_bytes", "header_only", "half_payload"],
)
def test_truncated_frame_then_half_close(daemon: RunningDaemon, data: bytes, detail: str) -> None:
    with connect(daemon) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = recv_error(sock)
        assert reply["code"] == "bad_frame"
        assert detail in reply["message"]
        assert_closed(sock)
    assert_healthy(daemon)


def test_truncated_audio_frame_then_half_close(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        start(sock, "t", "file")
        sock.sendall(wire.msg({"type": "audio", "id": "t", "size": 1000}))
        sock.sendall(struct.pack(">I", 1000) + b"\x00" * 300)
        sock.shutdown(socket.SHUT_WR)
        assert recv_error(sock)["code"] == "bad_frame"
        assert_closed(sock)
    assert_healthy(daemon)


@pytest.mark.parametrize(
    "data",
    [struct.pack(">I", 50), struct.pack(">I", 50) + b"{}", b"\x00\x00"],
    ids=["header_only", "half_payload", "half_header"],
)
def test_truncated_frame_then_close(daemon: RunningDaemon, data: bytes) -> None:
    with connect(daemon) as sock:
        sock.sendall(data)
    assert_healthy(daemon)


# --- request errors: the connection stays usable ------------------------------------------

PCM_REQ = {"type": "transcribe", "id": "r", "format": "pcm", **pcm_fields()}

USABLE_CASES: dict[str, tuple[bytes, str, Any]] = {
    "not_json": (wire.frame(b"this is not json"), "bad_json", None),
    "invalid_utf8": (wire.frame(b'{"type": "ping", "id": "\xff\xfe"}'), "bad_json", None),
    "empty_frame": (wire.frame(b""), "bad_json", None),
    "small_garbage_frame": (wire.frame(os.urandom(16).replace(b"{", b"(")), "bad_json", None),
    "json_array": (wire.msg([{"type": "ping", "id": 1}]), "not_object", None),
    "json_number": (wire.msg(42), "not_object", None),
    "json_string": (wire.msg("ping"), "not_object", None),
    "json_null": (wire.msg(None), "not_object", None),
    "unknown_type": (wire.msg({"type": "transcribe_all", "id": "u"}), "unknown_type", "u"),
    "missing_type": (wire.msg({"id": "m"}), "bad_field", "m"),
    "bool_id": (wire.msg({"type": "ping", "id": True}), "bad_field", None),
    "float_id": (wire.msg({"type": "ping", "id": 1.5}), "bad_field", None),
    "long_id": (wire.msg({"type": "ping", "id": "x" * 201}), "bad_field", None),
    "transcribe_without_format": (wire.msg({"type": "transcribe", "id": "r"}), "bad_field", "r"),
    "transcribe_bad_format": (
        wire.msg({"type": "transcribe", "id": "r", "format": "mp3"}),
        "bad_field",
        "r",
    ),
    "pcm_sample_rate_1": (wire.msg({**PCM_REQ, "sample_rate": 1}), "bad_field", "r"),
    "pcm_sample_rate_1e9": (wire.msg({**PCM_REQ, "sample_rate": 10**9}), "bad_field", "r"),
    "pcm_sample_rate_bool": (wire.msg({**PCM_REQ, "sample_rate": True}), "bad_field", "r"),
    "pcm_channels_0": (wire.msg({**PCM_REQ, "channels": 0}), "bad_field", "r"),
    "pcm_channels_9": (wire.msg({**PCM_REQ, "channels": 9}), "bad_field", "r"),
    "pcm_encoding_u8": (wire.msg({**PCM_REQ, "encoding": "u8"}), "bad_field", "r"),
    "pcm_without_encoding": (
        wire.msg({k: v for k, v in PCM_REQ.items() if k != "encoding"}),
        "bad_field",
        "r",
    ),
    "beam_size_0": (wire.msg({**PCM_REQ, "options": {"beam_size": 0}}), "bad_field", "r"),
    "beam_size_true": (wire.msg({**PCM_REQ, "options": {"beam_size": True}}), "bad_field", "r"),
    "unknown_option": (
        wire.msg({**PCM_REQ, "options": {"temperature": 0.5}}),
        "bad_field",
        "r",
    ),
    "options_not_object": (wire.msg({**PCM_REQ, "options": [1]}), "bad_field", "r"),
    "audio_unknown_id": (
        wire.msg({"type": "audio", "id": "nope", "size": 1000}) + wire.frame(b"\x01" * 1000),
        "unknown_request",
        "nope",
    ),
    "end_unknown_id": (wire.msg({"type": "end", "id": "nope"}), "unknown_request", "nope"),
    "cancel_unknown_id": (wire.msg({"type": "cancel", "id": "nope"}), "unknown_request", "nope"),
}


@pytest.mark.parametrize("case", sorted(USABLE_CASES))
def test_request_errors_keep_the_connection(daemon: RunningDaemon, case: str) -> None:
    data, code, rid = USABLE_CASES[case]
    with connect(daemon) as sock:
        sock.sendall(data)
        reply = recv_error(sock)
        assert reply["code"] == code, reply
        assert reply["id"] == rid, reply
        assert_usable(sock)
    assert_healthy(daemon)


def test_audio_for_another_id_while_receiving(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        start(sock, 1, "file")
        sock.sendall(wire.msg({"type": "audio", "id": 2, "size": 10}) + wire.frame(b"\x00" * 10))
        reply = recv_error(sock)
        assert (reply["code"], reply["id"]) == ("unknown_request", 2)
        assert_usable(sock)
        # the real request is unharmed
        send_audio(sock, 1, jfk_bytes())
        sock.sendall(wire.msg({"type": "end", "id": 1}))
        _, result = collect(sock, 1)
        assert result["type"] == "result" and "country" in result["text"]
    assert_healthy(daemon)


def test_request_before_hello(daemon: RunningDaemon) -> None:
    with connect(daemon, greet=False) as sock:
        for message in (
            {"type": "ping", "id": "early"},
            {"type": "status", "id": "early"},
            {"type": "transcribe", "id": "early", "format": "file"},
            {"type": "end", "id": "early"},
        ):
            sock.sendall(wire.msg(message))
            reply = recv_error(sock)
            assert (reply["code"], reply["id"]) == ("handshake_required", "early"), reply
        assert wire.hello(sock)["type"] == "hello"
        assert_usable(sock)
    assert_healthy(daemon)


def test_audio_before_hello_is_consumed(daemon: RunningDaemon) -> None:
    with connect(daemon, greet=False, timeout=10) as sock:
        payload = b"\x00" * 100_000
        sock.sendall(wire.msg({"type": "audio", "id": 3, "size": len(payload)}))
        sock.sendall(wire.frame(payload))
        reply = recv_error(sock)
        assert (reply["code"], reply["id"]) == ("handshake_required", 3)
        assert wire.hello(sock)["type"] == "hello"
        assert_usable(sock)


def test_hello_with_version_of_wrong_type(daemon: RunningDaemon) -> None:
    with connect(daemon, greet=False) as sock:
        sock.sendall(wire.msg({"type": "hello", "id": 1, "version": "1"}))
        assert recv_error(sock)["code"] == "bad_field"
        assert wire.hello(sock)["type"] == "hello"
        assert_usable(sock)


def test_hello_reports_limits(daemon: RunningDaemon) -> None:
    with connect(daemon, greet=False) as sock:
        sock.sendall(wire.msg({"type": "hello", "id": "h", "version": 1, "client": "t"}))
        reply = wire.recv(sock)
        assert reply["id"] == "h" and reply["version"] == 1
        assert reply["server"].startswith("whisperd/")
        assert reply["limits"] == {
            "max_message": 65536,
            "max_audio_frame": 4194304,
            "max_audio_bytes": 268435456,
        }


def test_message_at_the_limit_is_read(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        body = b'{"type": "ping", "id": "big", "pad": "'
        body += b"x" * (65536 - len(body) - 2) + b'"}'
        assert len(body) == 65536
        sock.sendall(wire.frame(body))
        assert wire.recv(sock) == {"type": "pong", "id": "big"}


def test_second_transcribe_while_receiving_is_busy(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        start(sock, "first", "file")
        sock.sendall(wire.msg({"type": "transcribe", "id": "second", "format": "file"}))
        reply = recv_error(sock)
        assert (reply["code"], reply["id"]) == ("busy", "second")
        assert_usable(sock)
        send_audio(sock, "first", jfk_bytes())
        sock.sendall(wire.msg({"type": "end", "id": "first"}))
        _, result = collect(sock, "first")
        assert result["type"] == "result" and "country" in result["text"]
    assert_healthy(daemon)


def test_cancel_while_receiving(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        start(sock, "c", "file")
        send_audio(sock, "c", jfk_bytes()[:20000])
        sock.sendall(wire.msg({"type": "cancel", "id": "c"}))
        reply = recv_error(sock)
        assert (reply["code"], reply["id"]) == ("cancelled", "c")
        sock.sendall(wire.msg({"type": "end", "id": "c"}))
        assert recv_error(sock)["code"] == "unknown_request"
        assert_usable(sock)
    assert_healthy(daemon)


@pytest.mark.parametrize(
    ("size", "fields"),
    [
        (3, pcm_fields()),
        (32001, pcm_fields()),
        (32002, pcm_fields(channels=2)),
        (32006, pcm_fields(encoding="f32le")),
        (44100 * 2 + 1, pcm_fields(rate=44100)),
    ],
    ids=["3_bytes", "odd_s16", "stereo_partial", "f32_partial", "44k_odd"],
)
def test_pcm_not_whole_frames_is_bad_audio(
    daemon: RunningDaemon, size: int, fields: dict[str, Any]
) -> None:
    with connect(daemon) as sock:
        segments, reply = transcribe(sock, "p", b"\x01" * size, "pcm", **fields)
        assert segments == []
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "bad_audio", "p")
        assert "whole number" in reply["message"]
        assert_usable(sock)
    assert_healthy(daemon)


@pytest.mark.parametrize(
    "data",
    [
        os.urandom(50_000),
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + os.urandom(200),
        b"fLaC" + os.urandom(5000),
        b"not audio at all",
    ],
    ids=["random", "wav_header", "flac_magic", "text"],
)
def test_corrupt_file_is_bad_audio(daemon: RunningDaemon, data: bytes) -> None:
    with connect(daemon) as sock:
        segments, reply = transcribe(sock, "f", data, "file")
        assert segments == []
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "bad_audio", "f")
        assert_usable(sock)
    assert_healthy(daemon)


def test_empty_file_is_bad_audio(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        start(sock, "e", "file")
        sock.sendall(wire.msg({"type": "end", "id": "e"}))
        _, reply = collect(sock, "e")
        assert (reply["type"], reply["code"]) == ("error", "bad_audio")
        # zero-length audio frames are legal and still make an empty file
        _, reply = transcribe(sock, "e2", b"", "file")
        assert (reply["type"], reply["code"]) == ("error", "bad_audio")
        start(sock, "e3", "file")
        sock.sendall(wire.msg({"type": "audio", "id": "e3", "size": 0}) + wire.frame(b""))
        sock.sendall(wire.msg({"type": "end", "id": "e3"}))
        _, reply = collect(sock, "e3")
        assert (reply["type"], reply["code"]) == ("error", "bad_audio")
        assert_usable(sock)
    assert_healthy(daemon)


def test_empty_pcm_is_too_short(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        _, reply = transcribe(sock, "z", b"", "pcm", **pcm_fields())
        assert reply["type"] == "result", reply
        assert (reply["skipped"], reply["text"]) == ("too_short", "")


def test_unknown_language_is_not_an_internal_error(daemon: RunningDaemon) -> None:
    """An unknown language code is the client's mistake: bad_field (or ignored), not internal."""
    tone = (np.sin(np.arange(32000) / 3) * 3000).astype("<i2").tobytes()
    with connect(daemon) as sock:
        start(sock, "l", "pcm", **pcm_fields(), options={"language": "zz"})
        send_audio(sock, "l", tone)
        sock.sendall(wire.msg({"type": "end", "id": "l"}))
        _, reply = collect(sock, "l")
        assert reply["type"] == "result" or reply.get("code") == "bad_field", reply
        assert_usable(sock)


# --- disconnects ------------------------------------------------------------------------------


def test_disconnect_mid_upload(daemon: RunningDaemon) -> None:
    data = jfk_bytes()
    with connect(daemon) as sock:
        start(sock, "d", "file")
        send_audio(sock, "d", data[: len(data) // 2], chunk=8192)
    with connect(daemon) as sock:
        start(sock, "d", "file")
        sock.sendall(wire.msg({"type": "audio", "id": "d", "size": 100_000}))
        sock.sendall(struct.pack(">I", 100_000) + data[:30_000])
    assert_healthy(daemon)


@pytest.mark.slow
def test_disconnect_while_transcribing(daemon: RunningDaemon) -> None:
    data = shared_audio("multilingual.mp3").read_bytes()  # 60 s: decoding takes a while
    with connect(daemon) as sock:
        start(sock, "gone", "file")
        send_audio(sock, "gone", data)
        sock.sendall(wire.msg({"type": "end", "id": "gone"}))
        first = wire.recv(sock)  # the model is running now
        assert first["type"] in ("segment", "result"), first
    # a queued request of a client that leaves is dropped too
    with connect(daemon) as busy, connect(daemon) as queued:
        start(busy, 1, "file")
        send_audio(busy, 1, data)
        start(queued, 2, "file")
        send_audio(queued, 2, jfk_bytes())
        busy.sendall(wire.msg({"type": "end", "id": 1}))
        queued.sendall(wire.msg({"type": "end", "id": 2}))
        queued.close()
        busy.close()
    assert_healthy(daemon)
    with connect(daemon) as sock:
        sock.sendall(wire.msg({"type": "status", "id": "s"}))
        status = wire.recv(sock)
        assert status["queue_length"] == 0
        assert status["pid"] == daemon.process.pid


# --- the volume test --------------------------------------------------------------------------

BULK_FRAMES: list[tuple[bytes, str]] = [
    (wire.frame(b"not json"), "bad_json"),
    (wire.frame(b"\xff\xfe\xfd"), "bad_json"),
    (wire.msg([1, 2, 3]), "not_object"),
    (wire.msg(7), "not_object"),
    (wire.msg("s"), "not_object"),
    (wire.msg({"type": "nonsense", "id": 1}), "unknown_type"),
    (wire.msg({"type": "transcribe", "id": 1}), "bad_field"),
    (wire.msg({**PCM_REQ, "sample_rate": 1}), "bad_field"),
    (wire.msg({**PCM_REQ, "channels": 0}), "bad_field"),
    (wire.msg({**PCM_REQ, "options": {"beam_size": 0}}), "bad_field"),
    (wire.msg({"type": "end", "id": 9}), "unknown_request"),
    (
        wire.msg({"type": "audio", "id": 9, "size": 64}) + wire.frame(b"\x00" * 64),
        "unknown_request",
    ),
]
FATAL_FRAMES: list[bytes] = [
    b"\xde\xad\xbe\xef",
    struct.pack(">I", 70_000),
    wire.msg({"type": "audio", "id": 1, "size": MB4 + 1}),
    wire.msg({"type": "hello", "id": 1, "version": 99}),
]


def bulk_worker(daemon: RunningDaemon, seed: int, counts: list[int], errors: list[str]) -> None:
    rng = np.random.default_rng(seed)
    try:
        for connection in range(6):
            with connect(daemon) as sock:
                picks = rng.integers(0, len(BULK_FRAMES), 90)
                sock.sendall(b"".join(BULK_FRAMES[i][0] for i in picks))
                for i in picks:
                    reply = wire.recv(sock)
                    if reply.get("code") != BULK_FRAMES[i][1]:
                        errors.append(f"expected {BULK_FRAMES[i][1]}, got {reply}")
                ping(sock, f"bulk-{seed}-{connection}")
                counts.append(len(picks))
            for data in FATAL_FRAMES:
                with connect(daemon, greet=data is not FATAL_FRAMES[-1]) as sock:
                    sock.sendall(data)
                    reply = wire.recv(sock)
                    if reply.get("code") not in ("frame_too_large", "unsupported_version"):
                        errors.append(f"fatal frame answered {reply}")
                    counts.append(1)
            with connect(daemon) as sock:  # truncated, then gone
                sock.sendall(struct.pack(">I", 100) + b"{")
    except Exception as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(f"worker {seed}: {exc!r}")


@pytest.mark.slow
def test_volume_of_malformed_frames(daemon: RunningDaemon) -> None:
    with connect(daemon) as sock:
        sock.sendall(wire.msg({"type": "status", "id": "before"}))
        pid_before = wire.recv(sock)["pid"]
    counts: list[int] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=bulk_worker, args=(daemon, seed, counts, errors))
        for seed in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:5]
    assert sum(counts) >= 3000
    assert_healthy(daemon)
    with connect(daemon) as sock:
        sock.sendall(wire.msg({"type": "status", "id": "after"}))
        status = wire.recv(sock)
    assert status["pid"] == pid_before == daemon.process.pid
    assert status["queue_length"] == 0


# --- limits of a daemon with a small audio cap ------------------------------------------------


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("capped")
    (tmp / "cfg" / "whisperd").mkdir(parents=True)
    (tmp / "cfg" / "whisperd" / "config.toml").write_text(
        "[daemon]\nmax_audio_bytes = 4194304\nmax_audio_seconds = 60\n"
    )
    running = start_daemon(tmp, "--idle-timeout", "600")
    yield running
    stop_daemon(running)
    assert running.process.returncode == 0, running.log()


def test_capped_daemon_reports_its_limit(capped: RunningDaemon) -> None:
    with connect(capped, greet=False) as sock:
        assert wire.hello(sock)["limits"]["max_audio_bytes"] == 4194304


def test_audio_over_max_audio_bytes(capped: RunningDaemon) -> None:
    with connect(capped) as sock:
        start(sock, "big", "file")
        send_audio(sock, "big", b"\x00" * MB4, chunk=MB4)  # exactly the cap: accepted
        ping(sock, "still-receiving")
        sock.sendall(wire.msg({"type": "audio", "id": "big", "size": 2}) + wire.frame(b"\x00\x00"))
        reply = recv_error(sock)
        assert (reply["code"], reply["id"]) == ("audio_too_large", "big")
        assert "max_audio_bytes" in reply["message"]
        assert_usable(sock)
        # the request was dropped: its end is unknown now
        sock.sendall(wire.msg({"type": "end", "id": "big"}))
        assert recv_error(sock)["code"] == "unknown_request"
        # and the connection can transcribe again
        _, result = transcribe(sock, "next", jfk_bytes())
        assert result["type"] == "result" and "country" in result["text"]
    assert_healthy(capped)


def test_pcm_over_max_audio_bytes(capped: RunningDaemon) -> None:
    with connect(capped) as sock:
        start(sock, "pcm", "pcm", **pcm_fields(rate=48000, channels=2, encoding="f32le"))
        send_audio(sock, "pcm", b"\x00" * (MB4 - 8), chunk=MB4)  # 10.9 s, under the cap
        sock.sendall(wire.msg({"type": "audio", "id": "pcm", "size": 16}) + wire.frame(bytes(16)))
        reply = recv_error(sock)
        assert (reply["code"], reply["id"]) == ("audio_too_large", "pcm")
        assert_usable(sock)
    assert_healthy(capped)


def read_until_pong(sock: socket.socket, rid: str) -> list[dict[str, Any]]:
    """Ping, and return every message that arrives before the pong."""
    sock.sendall(wire.msg({"type": "ping", "id": rid}))
    before = []
    while (message := wire.recv(sock)) != {"type": "pong", "id": rid}:
        before.append(message)
    return before


@pytest.mark.parametrize("fmt", ["pcm", "file"])
def test_audio_over_max_audio_seconds(capped: RunningDaemon, fmt: str) -> None:
    seventy_seconds = b"\x00\x00" * 16000 * 70
    if fmt == "file":
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(seventy_seconds)
        data, fields = buffer.getvalue(), {}
    else:
        data, fields = seventy_seconds, pcm_fields()
    with connect(capped) as sock:
        start(sock, "long", fmt, **fields)
        send_audio(sock, "long", data, chunk=MB4)
        sock.sendall(wire.msg({"type": "end", "id": "long"}))
        # PCM is checked as it arrives (then `end` is unknown), a file once decoded.
        reply = recv_error(sock)
        assert (reply["code"], reply["id"]) == ("audio_too_large", "long")
        assert "max_audio_seconds" in reply["message"]
        rest = read_until_pong(sock, "after")
        assert [(m["type"], m.get("code")) for m in rest] in (
            [],
            [("error", "unknown_request")],
        ), rest
    assert_healthy(capped)


def speech_pcm_16k(repeat: int) -> bytes:
    from whisperd.audio import decode_file

    samples = decode_file(jfk_bytes())
    return (np.tile(samples, repeat) * 32767).astype("<i2").tobytes()


@pytest.mark.slow
def test_cancelled_stream_sends_nothing_more(daemon: RunningDaemon) -> None:
    pcm = speech_pcm_16k(3)  # 33 s: windows start while it streams
    with connect(daemon) as sock:
        start(sock, "w", "pcm", **pcm_fields())
        # A window starts while this streams in; cancel at once, before it yields anything.
        send_audio(sock, "w", pcm, chunk=64000)
        sock.sendall(wire.msg({"type": "cancel", "id": "w"}))
        reply = wire.recv(sock)
        assert (reply["type"], reply["code"]) == ("error", "cancelled"), reply
        late = [m for m in wait_idle(sock) if m.get("id") == "w"]
        assert late == [], f"{len(late)} message(s) for the cancelled request: {late[:2]}"
    assert_healthy(daemon)


def wait_idle(sock: socket.socket) -> list[dict[str, Any]]:
    """Poll status until the daemon is not busy; return the other messages seen meanwhile."""
    seen = []
    deadline = time.monotonic() + 120
    while True:
        sock.sendall(wire.msg({"type": "status", "id": "st"}))
        while (message := wire.recv(sock))["type"] != "status":
            seen.append(message)
        if not message["busy"] or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


@pytest.mark.slow
def test_stream_over_max_audio_bytes_sends_nothing_more(capped: RunningDaemon) -> None:
    from whisperd.audio import decode_file

    speech = np.tile(decode_file(jfk_bytes()), 3)  # 33 s
    at_48k = np.interp(np.arange(0, speech.size, 1 / 3), np.arange(speech.size), speech)
    stereo = np.repeat(at_48k, 2)  # the same on both channels
    pcm = (stereo * 32767).astype("<i2").tobytes()
    assert len(pcm) > MB4 + 1024
    with connect(capped) as sock:
        start(sock, "s", "pcm", **pcm_fields(rate=48000, channels=2))
        # 21.8 s: a window starts while this streams in; the next frame goes over the cap
        # at once, before the window yields anything.
        send_audio(sock, "s", pcm[:MB4], chunk=1024 * 1024)
        send_audio(sock, "s", pcm[MB4 : MB4 + 1024])
        reply = wire.recv(sock)
        assert (reply["type"], reply["code"]) == ("error", "audio_too_large"), reply
        late = [m for m in wait_idle(sock) if m.get("id") == "s"]
        assert late == [], f"{len(late)} message(s) for the dropped request: {late[:2]}"
    assert_healthy(capped)


# --- regressions: inputs that once dropped the connection without an error ---------------


def test_deeply_nested_json_is_bad_json(daemon: RunningDaemon) -> None:
    with connect(daemon, timeout=10) as sock:
        sock.sendall(wire.frame(b"[" * 60000))
        assert recv_error(sock)["code"] == "bad_json"
        assert_usable(sock)


def test_huge_integer_is_bad_json(daemon: RunningDaemon) -> None:
    with connect(daemon, timeout=10) as sock:
        sock.sendall(wire.frame(b'{"type": "ping", "id": ' + b"9" * 5000 + b"}"))
        assert recv_error(sock)["code"] in ("bad_json", "bad_field")
        assert_usable(sock)


def test_lone_surrogate_id(daemon: RunningDaemon) -> None:
    with connect(daemon, timeout=10) as sock:
        sock.sendall(wire.frame(b'{"type": "ping", "id": "\\ud800"}'))
        reply = wire.recv(sock)
        assert reply["type"] in ("pong", "error"), reply
        assert_usable(sock)


def test_daemon_survived_the_crashing_inputs(daemon: RunningDaemon) -> None:
    assert_healthy(daemon)


# --- hostile audio files (issue 11): decoded in the decoder process, never in the daemon ----


def peak_rss_mib(daemon: RunningDaemon) -> int:
    status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
        // 1024
    )


def test_mp3_that_crashed_ffmpeg_leaves_the_daemon_serving(daemon: RunningDaemon) -> None:
    """One stereo->mono frame in hotwords.mp3 killed the daemon with SIGSEGV."""
    data = audio_fuzz.mp3_frame_layout_switch(shared_audio("hotwords.mp3"))
    with connect(daemon) as sock:
        _, reply = transcribe(sock, "mp3", data)
        assert reply["type"] == "result" or reply["code"] == "bad_audio", reply
        assert_usable(sock)
    assert_healthy(daemon)


def test_wav_claiming_1_hz_is_bad_audio_at_once(daemon: RunningDaemon) -> None:
    assert_healthy(daemon)  # the model is loaded: what follows is the file's cost alone
    before = peak_rss_mib(daemon)
    with connect(daemon) as sock:
        _, reply = transcribe(sock, "1hz", audio_fuzz.wav_claiming(1, 20_000))
        assert (reply["type"], reply["code"]) == ("error", "bad_audio"), reply
        assert "sample rate 1 Hz" in reply["message"]
        assert_usable(sock)
    assert peak_rss_mib(daemon) - before < 200  # it took 3.6 GB
    assert_healthy(daemon)


def test_six_hour_flac_is_refused_without_decoding_it(capped: RunningDaemon) -> None:
    """45 KB of FLAC that decode to 1.4 GB of samples (a 4 MB one took 3.5 GB)."""
    assert_healthy(capped)  # the model is loaded: what follows is the file's cost alone
    before = peak_rss_mib(capped)
    with connect(capped) as sock:
        _, reply = transcribe(sock, "bomb", audio_fuzz.silent_flac(6 * 3600))
        assert reply["type"] == "error", reply
        assert "its header says 21600 s" in reply["message"]
        assert "max_audio_seconds" in reply["message"]
        assert_usable(sock)
    assert peak_rss_mib(capped) - before < 200
    assert_healthy(capped)


def test_six_hour_flac_is_audio_too_large(capped: RunningDaemon) -> None:
    with connect(capped) as sock:
        _, reply = transcribe(sock, "bomb", audio_fuzz.silent_flac(6 * 3600))
        assert (reply["type"], reply["code"]) == ("error", "audio_too_large"), reply


def test_ffconcat_playlist_is_refused_and_opens_nothing(daemon: RunningDaemon) -> None:
    """The playlist names a real recording in the daemon's working directory ($HOME under
    systemd): the daemon used to open and transcribe it."""
    cwd = Path(os.readlink(f"/proc/{daemon.process.pid}/cwd"))
    private = cwd / f"whisperd-test-private-{os.getpid()}.flac"
    private.write_bytes(jfk_bytes())
    try:
        playlist = f"ffconcat version 1.0\nfile {private.name}\n".encode()
        with connect(daemon) as sock:
            _, reply = transcribe(sock, "concat", playlist)
            assert (reply["type"], reply["code"]) == ("error", "bad_audio"), reply
            _, reply = transcribe(sock, "concat50", playlist + playlist[21:] * 49)
            assert (reply["type"], reply["code"]) == ("error", "bad_audio"), reply
            assert_usable(sock)
    finally:
        private.unlink()
    assert_healthy(daemon)
