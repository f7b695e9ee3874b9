"""Start, activation and exit of the real daemon: LISTEN_FDS, sd_notify, idle exit, races."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import start_daemon, stop_daemon, wait_for_socket
from tests.wire import closed_by_peer, hello, msg, recv


class NotifyListener:
    """A NOTIFY_SOCKET like systemd's: collects what the daemon reports."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def close(self) -> None:
        self.sock.close()


def ping(sock: socket.socket, rid: int = 1) -> dict[str, object]:
    sock.sendall(msg({"type": "ping", "id": rid}))
    return recv(sock)


def write_config(tmp: Path, body: str) -> None:
    cfg = tmp / "cfg" / "whisperd"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.toml").write_text(body)


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="needs systemd")
def test_socket_activation_with_real_listen_fds(tmp_path: Path) -> None:
    sock_path = tmp_path / "whisperd.sock"
    notify = NotifyListener(tmp_path / "notify.sock")
    log_path = tmp_path / "log"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    with open(log_path, "wb") as log_file:
        activator = subprocess.Popen(
            [
                "systemd-socket-activate",
                "-l",
                str(sock_path),
                "-E",
                f"NOTIFY_SOCKET={notify.path}",
                "-E",
                f"PYTHONPATH={Path(__file__).resolve().parents[2]}",
                sys.executable,
                "-m",
                "whisperd.server",
                "--idle-timeout",
                "1",
            ],
            stdout=log_file,
            stderr=log_file,
            env=env,
        )
    try:
        deadline = time.monotonic() + 10
        while not sock_path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        # The first connection starts the daemon, which receives the socket as fd 3.
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(30)
        client.connect(str(sock_path))
        assert hello(client)["type"] == "hello"
        client.sendall(msg({"type": "status", "id": 2}))
        status = recv(client)
        assert status["socket_activated"] is True
        assert ping(client)["type"] == "pong"
        client.close()
        assert activator.wait(20) == 0
    finally:
        if activator.poll() is None:
            activator.kill()
    messages = "\n".join(notify.drain())
    notify.close()
    assert "READY=1" in messages
    assert "STATUS=" in messages
    assert "STOPPING=1" in messages
    log = log_path.read_text()
    assert "socket activation" in log
    assert "exiting, which releases the model's memory" in log


def test_own_socket_is_private_and_never_taken_over(tmp_path: Path) -> None:
    first = start_daemon(tmp_path, "--idle-timeout", "60")
    try:
        mode = stat.S_IMODE(first.socket_path.stat().st_mode)
        assert mode == 0o600
        second = subprocess.run(
            [sys.executable, "-m", "whisperd.server", "--socket", str(first.socket_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "whisperd" in second.stderr and str(first.socket_path) in second.stderr
        sock = first.connect()
        hello(sock)
        assert ping(sock)["type"] == "pong"  # the first one still serves
        sock.close()
    finally:
        stop_daemon(first)


def test_stale_socket_is_removed(tmp_path: Path) -> None:
    first = start_daemon(tmp_path, "--idle-timeout", "60")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    assert first.socket_path.exists()  # a killed daemon leaves its socket behind
    second = start_daemon(tmp_path, "--idle-timeout", "60")
    try:
        sock = second.connect()
        hello(sock)
        assert ping(sock)["type"] == "pong"
        sock.close()
        assert "removing stale socket" in second.log()
    finally:
        stop_daemon(second)


def test_idle_exit_waits_for_open_connections_then_exits_zero(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--idle-timeout", "0.5")
    sock = daemon.connect()
    hello(sock)
    time.sleep(1.5)  # three idle periods with a connection open
    assert daemon.process.poll() is None, "whisperd exited with a connection open"
    assert ping(sock)["type"] == "pong"
    sock.close()
    assert daemon.process.wait(10) == 0
    assert not daemon.socket_path.exists()
    assert "idle for 0 s with no connection; exiting" in daemon.log()


def test_idle_timer_restarts_after_each_connection(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--idle-timeout", "1")
    try:
        for _ in range(4):  # 4 x 0.6 s: longer than the timeout in all, never idle for 1 s
            time.sleep(0.6)
            sock = daemon.connect()
            hello(sock)
            sock.close()
        assert daemon.process.poll() is None
    finally:
        stop_daemon(daemon)


def test_idle_timeout_comes_from_the_config_file(tmp_path: Path) -> None:
    write_config(tmp_path, "[daemon]\nidle_timeout = 0.3\n")
    daemon = start_daemon(tmp_path)
    assert daemon.process.wait(10) == 0


def test_no_connection_lost_at_the_idle_deadline(tmp_path: Path) -> None:
    """Hammer the socket around the idle deadline: every client that connects is served.

    A client that finds no socket starts a new daemon (as whisperctl does), so over the run
    several daemons come and go; none may drop a connection it accepted.
    """
    from whisperd.client import Client, ClientError

    write_config(tmp_path, "[daemon]\nidle_timeout = 0.25\n")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    sock_path = str(runtime / "whisperd.sock")
    env_backup = dict(os.environ)
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    failures: list[str] = []
    pids: set[int] = set()
    served = 0
    lock = threading.Lock()

    waves = 16
    barrier = threading.Barrier(6)

    def hammer(seed: int) -> None:
        nonlocal served
        for wave in range(waves):
            # Waves spaced at the idle timeout, give or take a few ms: each lands right at
            # the deadline, some just before the exit, some during it, some just after.
            time.sleep(0.25 + (wave % 5 - 2) * 0.01 + seed * 0.002)
            barrier.wait()
            try:
                with Client.connect(sock_path, timeout=10, connect_timeout=10) as client:
                    pid = client.status()["pid"]
                    client.ping()
                with lock:
                    pids.add(int(pid))
                    served += 1
            except ClientError as exc:
                with lock:
                    failures.append(f"{exc.code}: {exc.message}")

    try:
        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1.0)  # the last daemon's idle exit
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    assert failures == []
    assert served == 6 * waves
    print(f"{served} clients served by {len(pids)} daemons in turn")
    assert len(pids) >= 2, "the daemon never reached its idle deadline during the run"
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--idle-timeout", "60")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    assert not daemon.socket_path.exists()


def test_fatal_frame_closes_only_that_connection(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--idle-timeout", "60")
    try:
        bad = daemon.connect()
        good = daemon.connect()
        hello(good)
        bad.sendall((2**31).to_bytes(4, "big"))
        reply = recv(bad)
        assert reply["code"] == "frame_too_large"
        assert closed_by_peer(bad)
        assert ping(good)["type"] == "pong"
    finally:
        stop_daemon(daemon)


def test_another_daemon_can_start_after_idle_exit(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--idle-timeout", "0.3")
    assert daemon.process.wait(10) == 0
    again = start_daemon(tmp_path, "--idle-timeout", "60")
    try:
        wait_for_socket(again.socket_path, again.process)
    finally:
        stop_daemon(again)


@pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
def test_another_user_is_refused_even_through_an_open_socket(tmp_path: Path) -> None:
    """The 0600 mode is the first wall; SO_PEERCRED is checked even if it is opened up."""
    import tempfile

    # pytest's own temp folders are private to root; this one must be traversable by nobody.
    public = Path(tempfile.mkdtemp(prefix="whisperd-peercred-"))
    public.chmod(0o755)
    daemon = start_daemon(public, "--idle-timeout", "60")
    try:
        daemon.socket_path.parent.chmod(0o755)
        daemon.socket_path.chmod(0o666)
        probe = (
            "import socket, struct, json\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"s.connect({str(daemon.socket_path)!r})\n"
            "n = struct.unpack('>I', s.recv(4))[0]\n"
            "print(json.loads(s.recv(n))['code'], s.recv(1) == b'')\n"
        )
        done = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                probe,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.stdout.strip() == "forbidden True", done.stderr
        assert "refused a connection from uid 65534" in daemon.log()
        sock = daemon.connect()  # its own user is still served
        hello(sock)
        assert ping(sock)["type"] == "pong"
    finally:
        stop_daemon(daemon)
        shutil.rmtree(public, ignore_errors=True)
