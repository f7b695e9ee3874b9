"""The control socket's slots, on real Unix sockets: ``status --follow`` followers never
take the slots of commands (16 bars must not lock out ``whisperctl dictate``), a refused
connection gets a ``too_many_connections`` frame saying which cap it hit, and both clients
(whisperctl dictate, status --follow) say so instead of "not running" or "Broken pipe"."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.control.test_server import Handler, raw
from whisperd.control import client
from whisperd.control.protocol import MAX_CONNECTIONS, MAX_FOLLOWERS, Action, Code, receive, send
from whisperd.control.server import ControlServer
from whisperd.statusfollow import Follower, KeysRefused, events


@pytest.fixture
def path(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return run / "whisperd-keys.sock"


@pytest.fixture
def server(path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(path, Handler())
    srv.start()
    yield srv
    srv.close()


def follower(path: Path) -> socket.socket:
    sock = raw(path)
    send(sock, {"type": "follow"})
    assert receive(sock)["type"] == "status"  # it is being followed
    return sock


def whisperctl(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WHISPERD_KEYS_SOCKET": str(path), "XDG_RUNTIME_DIR": str(path.parent)}
    return subprocess.run(
        [sys.executable, "-m", "whisperd.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_followers_never_lock_out_commands(server: ControlServer, path: Path) -> None:
    """The reviewer's repro: 16 followers, then ``whisperctl dictate start`` must work, and
    a 17th follower is told why it is refused."""
    held = [follower(path) for _ in range(MAX_FOLLOWERS)]
    try:
        done = whisperctl(path, "dictate", "start")
        assert done.returncode == 0, done.stderr
        assert client.status(path)["state"] == "recording"
        with raw(path) as extra:
            send(extra, {"type": "follow"})
            refusal = receive(extra)
            assert refusal["code"] == Code.TOO_MANY_CONNECTIONS
            assert "too many followers" in refusal["message"]
            assert extra.recv(1) == b""  # and closed
        assert server.followers == MAX_FOLLOWERS
        # A command slot is still there for as many commands as the cap allows.
        commands = [raw(path) for _ in range(MAX_CONNECTIONS)]
        for sock in commands:
            send(sock, {"type": "status"})
            assert receive(sock)["type"] == "status"
        for sock in commands:
            sock.close()
    finally:
        for sock in held:
            sock.close()


def test_a_17th_status_follow_says_too_many_followers(server: ControlServer, path: Path) -> None:
    held = [follower(path) for _ in range(MAX_FOLLOWERS)]
    try:
        done = whisperctl(path, "status", "--follow", "--once", "--format", "text")
    finally:
        for sock in held:
            sock.close()
    assert done.returncode == 0, done.stderr
    assert "not running" not in done.stdout
    assert done.stdout.startswith("error: whisperd-keys has too many followers"), done.stdout


def test_dictate_says_too_many_connections_when_the_commands_cap_is_full(path: Path) -> None:
    srv = ControlServer(path, Handler(), max_connections=1)
    srv.start()
    try:
        with raw(path) as silent:
            send(silent, {"type": "status"})
            receive(silent)  # being served: it holds the one command slot
            done = whisperctl(path, "dictate", "toggle")
        assert done.returncode == 1
        assert "whisperd-keys has too many connections" in done.stderr, done.stderr
        assert "Broken pipe" not in done.stderr and "not running" not in done.stderr
    finally:
        srv.close()


REFUSAL = {
    "type": "error",
    "code": "too_many_connections",
    "message": "whisperd-keys has too many followers (16 at once)",
}


def refused_early() -> tuple[socket.socket, socket.socket]:
    """A connection whose server end sent its refusal and closed before the client's
    request: the client's send fails (EPIPE), the refusal is still there to read."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    send(theirs, REFUSAL)
    theirs.close()
    ours.settimeout(5)
    return ours, theirs


def test_the_command_client_reads_a_refusal_sent_before_its_request() -> None:
    ours, _ = refused_early()
    with ours, pytest.raises(client.KeysBusy) as caught:
        client.exchange(ours, {"type": "dictate", "action": Action.START.value})
    assert caught.value.code == Code.TOO_MANY_CONNECTIONS
    assert str(caught.value) == REFUSAL["message"]


def test_the_follower_reads_a_refusal_sent_before_its_request() -> None:
    ours, _ = refused_early()
    with ours, pytest.raises(KeysRefused) as caught:
        list(events(ours, False))
    assert str(caught.value) == REFUSAL["message"]


def test_a_refused_follower_says_why_once_and_retries(path: Path) -> None:
    srv = ControlServer(path, Handler(), max_followers=1)
    srv.start()
    out = io.StringIO()
    try:
        with follower(path):
            bar = Follower(path, "json", False, out, clock=lambda: 5.0, retry=0.0)
            bar.run_once()
            bar.run_once()  # refused again: not said twice
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert len(lines) == 1, lines
        assert lines[0]["state"] == "error"
        assert lines[0]["reason"].startswith("whisperd-keys has too many followers")
    finally:
        srv.close()
