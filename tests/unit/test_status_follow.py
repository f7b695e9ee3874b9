"""``whisperctl status --follow`` against a stand-in for whisperd-keys's control socket: a
real Unix socket server that sends status events, stops (closing and removing its socket
as whisperd-keys does at exit) and comes back. The follower runs as the real program in a
child process, so signals, broken pipes and reconnects are the real ones."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from whisperd.control.protocol import receive, send
from whisperd.protocol.framing import HEADER
from whisperd.statusfollow import Follower, connect, events

WAIT = 60.0  # seconds: generous, the machine is shared; nothing here measures time

Script = Callable[[socket.socket], None]


def status(state: str, **fields: Any) -> dict[str, Any]:
    return {"type": "status", "state": state, "since": 1.0, "daemon": "running", **fields}


class KeysLife:
    """One run of a stand-in whisperd-keys: listens on ``path``, serves one connection
    with ``script``, then closes and removes its socket (whisperd-keys's exit)."""

    def __init__(self, path: Path, script: Script) -> None:
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script: Script) -> None:
        try:
            conn, _ = self.server.accept()
            conn.settimeout(WAIT)
            with conn:
                self.requests.append(receive(conn))
                script(conn)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc
        finally:
            self.server.close()
            self.path.unlink(missing_ok=True)

    def end(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        if self.failure is not None:
            raise self.failure


def flapping(path: Path, times: int) -> int:
    """A whisperd-keys that dies at once ``times`` times: each connection is accepted
    and closed; returns how many connections came."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(WAIT)
    count = 0
    try:
        for _ in range(times):
            conn, _ = server.accept()
            conn.close()
            count += 1
    finally:
        server.close()
        path.unlink()
    return count


def sends(*events: dict[str, Any], until: threading.Event | None = None) -> Script:
    def script(conn: socket.socket) -> None:
        for event in events:
            send(conn, event)
        if until is not None:
            until.wait(WAIT)

    return script


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    return directory


class Follow:
    """``whisperctl status --follow`` in a child process, its lines read as they come."""

    def __init__(self, runtime: Path, *options: str, stdout: int = subprocess.PIPE) -> None:
        env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CONFIG_HOME": str(runtime / "config"),
            "WHISPERD_KEYS_SOCKET": str(runtime / "whisperd-keys.sock"),
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "whisperd.cli", "status", "--follow", *options],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        if self.process.stdout is not None:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self) -> str:
        try:
            return self.lines.get(timeout=WAIT)
        except queue.Empty:
            self.process.kill()
            raise AssertionError(f"no line; stderr: {self.process.communicate()[1]}") from None

    def event(self) -> dict[str, Any]:
        value = json.loads(self.line())
        assert isinstance(value, dict)
        return value

    def end(self, sig: int) -> tuple[int, str]:
        self.process.send_signal(sig)
        _, stderr = self.process.communicate(timeout=WAIT)
        return self.process.returncode, stderr


@pytest.fixture
def follows() -> Iterator[list[Follow]]:
    started: list[Follow] = []
    yield started
    for follow in started:
        if follow.process.poll() is None:
            follow.process.kill()
            follow.process.communicate()


def test_follows_reconnects_and_says_stopped_once_per_outage(
    runtime: Path, follows: list[Follow]
) -> None:
    path = runtime / "whisperd-keys.sock"
    follow = Follow(runtime)
    follows.append(follow)
    # whisperd-keys is not running yet: one "stopped" line, then quiet retries
    assert follow.event()["state"] == "stopped"

    release = threading.Event()
    first = KeysLife(path, sends(status("idle"), status("recording", elapsed=1.0), until=release))
    assert follow.event()["state"] == "idle"
    recording = follow.event()
    assert (recording["state"], recording["elapsed"]) == ("recording", 1.0)
    release.set()  # whisperd-keys stops
    first.end()
    assert follow.event()["state"] == "stopped"

    # Several retries fail while it is away (here: three connections closed at once, each
    # counted); none prints another "stopped" line: the next line is the restarted
    # whisperd-keys's first event.
    refused = flapping(path, 3)
    second = KeysLife(path, sends(status("transcribing"), status("typing")))
    assert follow.event()["state"] == "transcribing"
    assert follow.event()["state"] == "typing"
    second.end()
    assert follow.event()["state"] == "stopped"
    assert first.requests == second.requests == [{"type": "follow", "text": False}]
    assert refused == 3

    code, stderr = follow.end(signal.SIGTERM)
    assert code == 0 and stderr == ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_end_it_cleanly_while_connected(
    runtime: Path, follows: list[Follow], sig: int
) -> None:
    release = threading.Event()
    life = KeysLife(runtime / "whisperd-keys.sock", sends(status("idle"), until=release))
    follow = Follow(runtime, "--format", "text")
    follows.append(follow)
    assert follow.line() == "idle"
    code, stderr = follow.end(sig)
    release.set()
    life.end()
    assert code == 0
    assert stderr == "", stderr


def test_signal_ends_it_cleanly_while_waiting_to_reconnect(
    runtime: Path, follows: list[Follow]
) -> None:
    follow = Follow(runtime, "--format", "waybar")
    follows.append(follow)
    assert json.loads(follow.line())["class"] == "stopped"
    code, stderr = follow.end(signal.SIGINT)
    assert code == 0 and stderr == ""


def test_a_reader_that_leaves_ends_it_without_a_traceback(
    runtime: Path, follows: list[Follow]
) -> None:
    """``whisperctl status --follow | head -1``: the next line meets a closed pipe."""
    read_end, write_end = os.pipe()
    reader_gone = threading.Event()

    def script(conn: socket.socket) -> None:
        send(conn, status("idle"))
        reader_gone.wait(WAIT)
        try:
            for n in range(50):  # the first line after the reader left meets EPIPE
                send(conn, status("recording", elapsed=float(n)))
        except OSError:
            pass  # the follower is gone: that is the point

    life = KeysLife(runtime / "whisperd-keys.sock", script)
    follow = Follow(runtime, stdout=write_end)
    follows.append(follow)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        assert json.loads(reader.readline())["state"] == "idle"
    reader_gone.set()
    _, stderr = follow.process.communicate(timeout=WAIT)  # ends without a signal
    life.end()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert follow.process.returncode == 1


def test_text_is_asked_for_only_with_the_option(runtime: Path, follows: list[Follow]) -> None:
    life = KeysLife(
        runtime / "whisperd-keys.sock",
        sends(status("recording", elapsed=2.0, text="hello world")),
    )
    follow = Follow(runtime, "--text", "--format", "text")
    follows.append(follow)
    assert follow.line() == "recording 0:02: hello world"
    life.end()
    assert life.requests == [{"type": "follow", "text": True}]


def test_format_and_text_need_follow() -> None:
    from whisperd import cli

    assert cli.main(["status", "--format", "waybar"]) == 2
    assert cli.main(["status", "--text"]) == 2
    assert cli.main(["status", "--once"]) == 2


def once(runtime: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(runtime / "config"),
        "WHISPERD_KEYS_SOCKET": str(runtime / "whisperd-keys.sock"),
    }
    return subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "status", "--follow", "--once", *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
    )


def test_once_prints_the_state_now_and_exits(runtime: Path) -> None:
    release = threading.Event()
    life = KeysLife(
        runtime / "whisperd-keys.sock",
        sends(status("recording", elapsed=7.0), until=release),
    )
    done = once(runtime, "--format", "text")
    release.set()
    life.end()
    assert (done.returncode, done.stdout, done.stderr) == (0, "recording 0:07\n", "")


def test_once_says_stopped_when_whisperd_keys_is_not_running(runtime: Path) -> None:
    done = once(runtime, "--format", "waybar")
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout)["class"] == "stopped"


def test_follow_never_starts_whisperd_and_stays_light(runtime: Path) -> None:
    """Only the control socket is touched (whisperd's socket path here has a listener
    that would record a connection), and no heavy module is imported."""
    whisperd_socket = runtime / "whisperd.sock"
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    daemon.bind(str(whisperd_socket))
    daemon.listen(1)
    daemon.settimeout(0.0)
    probe = (
        "import sys, threading, signal, os\n"
        "from whisperd import cli\n"
        "threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()\n"
        "code = cli.main(['status', '--follow'])\n"
        "heavy = ('numpy', 'faster_whisper', 'ctranslate2', 'av', 'evdev', 'sounddevice')\n"
        "print('HEAVY', [m for m in heavy if m in sys.modules])\n"
        "sys.exit(code)\n"
    )
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(runtime / "config"),
        "WHISPERD_SOCKET": str(whisperd_socket),
    }
    env.pop("WHISPERD_KEYS_SOCKET", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=WAIT
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    assert json.loads(done.stdout.splitlines()[0])["state"] == "stopped"
    with pytest.raises(BlockingIOError):
        daemon.accept()  # nobody knocked on whisperd's socket
    daemon.close()


# --- one connection at a time, in this process ---------------------------------------------


def follow_once(path: Path, fmt: str = "json") -> list[str]:
    out = io.StringIO()
    Follower(path, fmt, False, out, clock=lambda: 5.0, retry=0.0).run_once()
    return out.getvalue().splitlines()


def test_hostile_bytes_end_the_connection_not_the_follower(runtime: Path) -> None:
    path = runtime / "whisperd-keys.sock"

    def garbage(conn: socket.socket) -> None:
        send(conn, status("idle"))
        send(conn, {"type": "status", "state": "<script>"})  # not a state: skipped
        send(conn, {"type": "hello"})  # not a status event: skipped
        conn.sendall(HEADER.pack(5) + b"{oops")  # not JSON: the connection is dropped

    life = KeysLife(path, garbage)
    lines = follow_once(path)
    life.end()
    assert [json.loads(line)["state"] for line in lines] == ["idle", "stopped"]


def test_an_oversized_frame_is_refused_before_it_is_read(runtime: Path) -> None:
    path = runtime / "whisperd-keys.sock"
    life = KeysLife(path, lambda conn: conn.sendall(HEADER.pack(1 << 30)))
    lines = follow_once(path, "text")
    life.end()
    assert lines == ["whisperd-keys is not running"]


def test_an_error_reply_is_said_not_taken_for_an_outage(runtime: Path) -> None:
    path = runtime / "whisperd-keys.sock"
    busy = {"type": "error", "code": "too_many_connections", "message": "16\x1b[2J already"}
    life = KeysLife(path, sends(busy, status("idle")))
    lines = follow_once(path, "text")
    life.end()
    assert lines == ["error: 16 [2J already"]  # whisperd-keys runs: never "not running"


def test_a_socket_of_another_kind_is_refused(runtime: Path) -> None:
    from whisperd.runtime import UnsafeRuntime

    path = runtime / "whisperd-keys.sock"
    path.write_text("not a socket")
    with pytest.raises(UnsafeRuntime):
        follow_once(path)


def test_whisperd_keys_leaving_before_the_request_is_an_outage(runtime: Path) -> None:
    """A socket error on the request is not a broken stdout (which would end whisperctl)."""
    path = runtime / "whisperd-keys.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    sock = connect(path)
    conn, _ = server.accept()
    conn.close()  # gone before the request: sending it fails (EPIPE)
    server.close()
    with sock:
        assert list(events(sock, False)) == []
