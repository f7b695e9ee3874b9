"""Stopping mid-request with the real model (issue 11, item 8): SIGTERM tells the client
`shutting_down` and the daemon exits cleanly; a client that leaves stops its decode."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import numpy as np
import pytest

from tests import wire
from tests.conftest import RunningDaemon, shared_audio, start_daemon, stop_daemon
from tests.integration.support import connect, send_audio, start
from tests.unit.daemon.fakes import wav_bytes

REPEATS = 20  # jfk.flac 20 times: 220 s of speech, many segments, long to decode


@pytest.fixture
def long_speech() -> bytes:
    from whisperd.audio import decode_file

    jfk = decode_file(shared_audio("jfk.flac").read_bytes())
    return wav_bytes(np.tile(jfk, REPEATS))


def first_segment(daemon: RunningDaemon, data: bytes, rid: str) -> socket.socket:
    sock = connect(daemon)
    start(sock, rid)
    send_audio(sock, rid, data)
    sock.sendall(wire.msg({"type": "end", "id": rid}))
    message = wire.recv(sock)
    assert message["type"] == "segment", message
    return sock


def test_sigterm_mid_request_tells_the_client(tmp_path: Path, long_speech: bytes) -> None:
    daemon = start_daemon(tmp_path, "--idle-timeout", "600")
    try:
        sock = first_segment(daemon, long_speech, "long")
        daemon.process.send_signal(signal.SIGTERM)
        while (message := wire.recv(sock))["type"] == "segment":
            pass
        assert message["type"] == "error" and message["code"] == "shutting_down", message
        assert message["id"] == "long"
        assert daemon.process.wait(30) == 0
        assert not daemon.socket_path.exists()
    finally:
        stop_daemon(daemon)


def test_a_client_that_leaves_stops_its_decode(tmp_path: Path, long_speech: bytes) -> None:
    daemon = start_daemon(tmp_path, "--idle-timeout", "600")
    try:
        sock = first_segment(daemon, long_speech, "gone")
        sock.close()
        with connect(daemon) as other:
            while True:
                other.sendall(wire.msg({"type": "status", "id": "s"}))
                status = wire.recv(other)
                if not status["busy"] and not status["queue_length"]:
                    break
        assert status["requests_served"] == 0, status
        log = daemon.log()
        assert "request 'gone' failed (cancelled)" in log, log[-3000:]
        assert "request 'gone': audio" not in log  # never logged as a success
    finally:
        stop_daemon(daemon)
