"""The control server on real Unix sockets: requests, followers, hostile bytes, the socket
file's safety, the connection cap and the idle timeout."""

from __future__ import annotations

import itertools
import os
import socket
import stat
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from whisperd.control import client
from whisperd.control.protocol import Action, Code, ControlError, receive, send
from whisperd.control.server import AlreadyRunning, ControlServer
from whisperd.protocol.framing import MAX_JSON_FRAME
from whisperd.runtime import UnsafeRuntime

_versions = itertools.count(1)


@dataclass
class FakeStatus:
    state: str
    text: str = ""
    version: int = field(default_factory=lambda: next(_versions))  # made later: newer

    def to_json(self, with_text: bool = False) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "status", "state": self.state, "since": 1.0}
        if with_text and self.text:
            event["text"] = self.text
        return event


@dataclass
class Handler:
    state: str = "idle"
    actions: list[Action] = field(default_factory=list)
    refuse: bool = False

    def dictate(self, action: Action) -> str:
        if self.refuse:
            raise ControlError(Code.UNAVAILABLE, "no microphone")
        self.actions.append(action)
        self.state = "recording" if action in (Action.START, Action.TOGGLE) else "idle"
        return self.state

    def snapshot(self) -> FakeStatus:
        return FakeStatus(self.state, "secret words")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return run / "whisperd-keys.sock"


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def server(path: Path, handler: Handler) -> Iterator[ControlServer]:
    srv = ControlServer(path, handler, idle_timeout=0.5)
    srv.start()
    yield srv
    srv.close()


def raw(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    return sock


def test_socket_is_private_and_removed_at_close(path: Path, handler: Handler) -> None:
    srv = ControlServer(path, handler)
    srv.start()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    srv.close()
    assert not path.exists()


def test_dictate_and_status(server: ControlServer, path: Path, handler: Handler) -> None:
    assert client.dictate(path, Action.START) == "recording"
    assert client.dictate(path, Action.STOP) == "idle"
    assert handler.actions == [Action.START, Action.STOP]
    event = client.status(path)
    assert event["state"] == "idle"
    assert "text" not in event  # a status request never carries text


def test_handler_errors_reach_the_client(
    server: ControlServer, path: Path, handler: Handler
) -> None:
    handler.refuse = True
    with pytest.raises(client.ControlFailed) as caught:
        client.dictate(path, Action.START)
    assert caught.value.code == Code.UNAVAILABLE


def test_followers_get_changes_and_text_only_when_allowed(path: Path, handler: Handler) -> None:
    for allow, expect_text in ((False, False), (True, True)):
        srv = ControlServer(path, handler, allow_text=allow)
        srv.start()
        try:
            with client.connect(path) as sock:
                events = client.follow(sock, text=True)
                assert next(events)["state"] == "idle"
                srv.publish(FakeStatus("recording", "hello"))
                event = next(events)
                assert event["state"] == "recording"
                assert ("text" in event) is expect_text
        finally:
            srv.close()
        assert not srv.running


class RacingHandler(Handler):
    """whisperd-keys changing state twice just as a follower connects: both changes are
    published (their broadcasts wait on the server's loop) before the follower's first
    status is taken, which is therefore already the newer one."""

    server: ControlServer | None = None
    last: FakeStatus = field(default_factory=lambda: FakeStatus("idle"))

    def snapshot(self) -> FakeStatus:
        if self.server is not None and self.state == "idle":
            self.state = "transcribing"
            self.server.publish(FakeStatus("recording"))
            self.last = FakeStatus("transcribing")
            self.server.publish(self.last)
        return self.last  # the status now is the one published last, same version


def test_a_new_follower_never_hears_an_older_state_after_its_first(path: Path) -> None:
    """A status bar connecting mid-dictation once showed "transcribing", then a flash of
    "recording" (a change published before its first status, sent after it)."""
    handler = RacingHandler()
    srv = ControlServer(path, handler)
    handler.server = srv
    srv.start()
    try:
        with client.connect(path) as sock:
            events = client.follow(sock)
            assert next(events)["state"] == "transcribing"
            srv.publish(FakeStatus("idle"))
            assert next(events)["state"] == "idle"  # not "recording", nor a repeat
    finally:
        srv.close()


def test_followers_end_cleanly_when_the_server_stops(path: Path, handler: Handler) -> None:
    srv = ControlServer(path, handler)
    srv.start()
    with client.connect(path) as sock:
        events = client.follow(sock)
        next(events)
        srv.close()
        assert not srv.running  # the loop ended (3.11's wait_for once kept a follower alive)
        assert list(events) == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", Code.BAD_JSON),
        (b"[]", Code.BAD_JSON),
        (b'{"type":"dictate","action":"explode"}', Code.BAD_FIELD),
        (b'{"type":"shell","cmd":"rm"}', Code.UNKNOWN_TYPE),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays(
    server: ControlServer, path: Path, payload: bytes, code: str
) -> None:
    with raw(path) as sock:
        sock.sendall(struct.pack(">I", len(payload)) + payload)
        assert receive(sock)["code"] == code
        send(sock, {"type": "status"})
        assert receive(sock)["type"] == "status"


def test_oversized_and_truncated_frames_cost_only_that_connection(
    server: ControlServer, path: Path
) -> None:
    with raw(path) as sock:
        sock.sendall(struct.pack(">I", MAX_JSON_FRAME + 1))
        assert receive(sock)["code"] == "frame_too_large"
        assert sock.recv(1) == b""  # closed
    with raw(path) as sock:
        sock.sendall(struct.pack(">I", 100) + b"{")
        sock.shutdown(socket.SHUT_WR)
        assert receive(sock)["code"] == "bad_frame"
    with raw(path) as sock:
        sock.sendall(b"\x00\x00")  # half a header, then gone
    assert client.status(path)["state"] == "idle"  # the server still serves


def test_an_idle_connection_is_closed(server: ControlServer, path: Path) -> None:
    with raw(path) as sock:
        assert receive(sock)["code"] == Code.TIMEOUT  # idle_timeout=0.5 in the fixture
        assert sock.recv(1) == b""


def test_connection_cap(path: Path, handler: Handler) -> None:
    srv = ControlServer(path, handler, max_connections=2)
    srv.start()
    try:
        held = [raw(path), raw(path)]
        send(held[0], {"type": "status"})  # make sure both are being served
        receive(held[0])
        send(held[1], {"type": "status"})
        receive(held[1])
        with raw(path) as third:
            assert receive(third)["code"] == "too_many_connections"
        for sock in held:
            sock.close()
        for _ in range(50):  # the server notices the closes asynchronously
            try:
                assert client.status(path)["state"] == "idle"
                break
            except client.ControlFailed:
                threading.Event().wait(0.05)
        else:
            pytest.fail("the cap was never released")
    finally:
        srv.close()


def test_a_stale_socket_is_replaced(path: Path, handler: Handler) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    srv = ControlServer(path, handler)
    srv.start()
    try:
        assert client.status(path)["state"] == "idle"
    finally:
        srv.close()


def test_a_live_socket_is_not_taken_over(
    server: ControlServer, path: Path, handler: Handler
) -> None:
    with pytest.raises(AlreadyRunning):
        ControlServer(path, handler).start()
    assert client.status(path)["state"] == "idle"


def test_unsafe_places_are_refused(tmp_path: Path, handler: Handler) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(UnsafeRuntime):
        ControlServer(shared / "k.sock", handler).start()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "k.sock").write_text("not a socket")
    with pytest.raises(UnsafeRuntime):
        ControlServer(private / "k.sock", handler).start()
    (private / "link.sock").symlink_to(private / "k.sock")
    with pytest.raises(UnsafeRuntime):
        client.connect(private / "link.sock")


def test_client_says_when_whisperd_keys_is_not_running(path: Path) -> None:
    with pytest.raises(client.KeysNotRunning) as caught:
        client.dictate(path, Action.TOGGLE)
    assert "systemctl --user start whisperd-keys" in str(caught.value)


def test_whisperctl_dictate_imports_nothing_heavy(server: ControlServer, path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from whisperd.cli import main\n"
        "status = main(['dictate', 'toggle'])\n"
        "heavy = [m for m in ('numpy', 'faster_whisper', 'ctranslate2', 'evdev', 'asyncio')"
        " if m in sys.modules]\n"
        "print(status, heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WHISPERD_KEYS_SOCKET": str(path)},
    )
    assert done.stdout.strip() == "0 []", done.stderr


def test_random_bytes_never_take_the_server_down(server: ControlServer, path: Path) -> None:
    import random

    rng = random.Random(13)
    for _ in range(60):
        with raw(path) as sock:
            sock.settimeout(2)
            kind = rng.randrange(4)
            if kind == 0:  # pure noise
                blob = rng.randbytes(rng.randrange(1, 300))
            elif kind == 1:  # a plausible header with a lying length
                blob = struct.pack(">I", rng.randrange(0, 1 << 32)) + rng.randbytes(20)
            elif kind == 2:  # a valid frame of random JSON-ish bytes
                body = bytes(rng.choice(b'{}[]":,0123456789abctypedisa\\u ') for _ in range(80))
                blob = struct.pack(">I", len(body)) + body
            else:  # a real request cut short
                body = b'{"type":"dictate","action":"start"}'
                blob = struct.pack(">I", len(body)) + body[: rng.randrange(len(body))]
            try:
                sock.sendall(blob)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):
                    pass
            except OSError:
                pass  # the server may close on us: that is the point
    assert client.status(path)["state"] in ("idle", "recording")
    assert server.running


def test_a_peer_of_another_uid_is_refused_both_ways(
    server: ControlServer, path: Path, handler: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whisperd import runtime
    from whisperd.control import server as server_module

    stranger = runtime.PeerCredentials(pid=4242, uid=os.getuid() + 1, gid=0)
    # The client: a listener of another uid gets not one byte (checked before sending).
    monkeypatch.setattr(runtime, "peer_credentials", lambda sock: stranger)
    with pytest.raises(UnsafeRuntime, match="runs as uid"):
        client.dictate(path, Action.START)
    monkeypatch.undo()
    # The server: a client of another uid is dropped before its request is read.
    monkeypatch.setattr(server_module, "peer_credentials", lambda sock: stranger)
    with raw(path) as sock:
        try:
            # The server may have closed already: then even the send fails.
            send(sock, {"type": "dictate", "action": "start"})
            answer = sock.recv(1)
        except (BrokenPipeError, ConnectionResetError):  # closed with our request unread
            answer = b""
        assert answer == b""
    assert handler.actions == []
