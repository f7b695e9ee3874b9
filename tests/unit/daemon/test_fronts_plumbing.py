"""The fronts' plumbing (whisperd/fronts, listener.py, lifecycle.py) with a fake front on a
real TCP socket and the fake engine: sockets told apart by name, front requests counted
for the idle exit, fronts started before ready and stopped at exit, refusals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.daemon.fakes import FakeEngine
from whisperd.config import DaemonConfig
from whisperd.daemon.connection import Scheduler
from whisperd.daemon.lifecycle import Daemon
from whisperd.daemon.listener import (
    BadAddress,
    bind_socket,
    bind_tcp,
    is_loopback,
    open_listener,
    parse_address,
    sort_activated,
)
from whisperd.fronts import Activity, FrontConfig, FrontRefused, configured_listen, load_factory


class FakeFront:
    """Counts what the lifecycle asks of it; a request is begun/ended by the test."""

    def __init__(self, scheduler: Scheduler, activity: Activity, config: FrontConfig) -> None:
        self.name = "fake"
        self.activity = activity
        self.config = config
        self.started: socket.socket | None = None
        self.stopped_with: float | None = None
        self.refuse = False

    async def start(self, sock: socket.socket) -> None:
        if self.refuse:
            raise FrontRefused("the fake front refuses")
        self.started = sock

    async def stop(self, grace: float) -> None:
        self.stopped_with = grace


def tcp_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def daemon_with_front(tmp_path: Path, idle: float = 0.3) -> tuple[Daemon, FakeFront]:
    listener = bind_socket(tmp_path / "whisperd.sock")
    listener.fronts["fake"] = tcp_listener()
    daemon = Daemon(DaemonConfig(idle_timeout=idle), listener, None, None, FakeEngine())
    made: list[FakeFront] = []

    def factory(scheduler: Scheduler, activity: Activity, config: FrontConfig) -> FakeFront:
        made.append(FakeFront(scheduler, activity, config))
        return made[-1]

    daemon.build_fronts({"daemon": {}}, {"fake": factory})
    return daemon, made[0]


def test_a_front_request_in_progress_holds_the_idle_exit_and_its_end_rearms_it(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        daemon, front = daemon_with_front(tmp_path)
        task = asyncio.ensure_future(daemon.run())
        await asyncio.sleep(0.05)
        assert front.started is daemon.listener.fronts["fake"]
        front.activity.begin()
        await asyncio.sleep(0.8)  # well past the idle timeout
        assert not task.done(), "the daemon exited while a front request was in progress"
        front.activity.end()
        assert await asyncio.wait_for(task, 5) == 0
        assert front.stopped_with is not None and front.stopped_with > 0

    asyncio.run(asyncio.wait_for(test(), 20))


def test_the_daemon_exits_idle_with_a_front_but_no_request(tmp_path: Path) -> None:
    async def test() -> None:
        daemon, front = daemon_with_front(tmp_path)
        sock = daemon.listener.fronts["fake"]
        # An open TCP connection to the front's socket that asks nothing is no activity.
        client = socket.create_connection(sock.getsockname())
        try:
            assert await asyncio.wait_for(daemon.run(), 5) == 0
        finally:
            client.close()
        assert front.stopped_with is not None
        assert sock.fileno() == -1  # closed at exit

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_refusing_front_stops_the_start_with_status_2(tmp_path: Path) -> None:
    async def test() -> None:
        daemon, front = daemon_with_front(tmp_path, idle=60)
        front.refuse = True
        assert await asyncio.wait_for(daemon.run(), 5) == 2
        assert not (tmp_path / "whisperd.sock").exists()

    asyncio.run(asyncio.wait_for(test(), 20))


def test_sigterm_stops_the_fronts_within_the_grace(tmp_path: Path) -> None:
    async def test() -> None:
        daemon, front = daemon_with_front(tmp_path, idle=60)
        task = asyncio.ensure_future(daemon.run())
        await asyncio.sleep(0.05)
        front.activity.begin()
        daemon.on_signal(signal.SIGTERM)
        assert await asyncio.wait_for(task, 5) == 0
        assert front.stopped_with is not None and front.stopped_with <= daemon.limits.stop_grace

    asyncio.run(asyncio.wait_for(test(), 20))


def test_activated_sockets_are_told_apart_by_name() -> None:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    http, stray = tcp_listener(), tcp_listener()
    main, fronts = sort_activated(
        [("http", http), ("whisperd.socket", unix), ("other", stray)], ("http", "wyoming")
    )
    assert main is unix and fronts == {"http": http}
    assert stray.fileno() == -1  # not ours to serve: closed
    unix.close()
    http.close()


def test_an_unnamed_activated_unix_socket_is_the_main_one() -> None:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    main, fronts = sort_activated([("unknown", unix)], ("http",))
    assert main is unix and fronts == {}
    unix.close()


def test_addresses() -> None:
    assert parse_address("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_address("[::1]:80") == ("::1", 80)
    assert parse_address("tcp://localhost:10300") == ("localhost", 10300)
    for bad in ("8765", "127.0.0.1:", ":80", "host:-1", "host:99999", "host:http"):
        with pytest.raises(BadAddress):
            parse_address(bad)


def test_loopback_is_recognised() -> None:
    local = bind_tcp("http", "127.0.0.1:0")
    assert is_loopback(local)
    local.close()
    anywhere = bind_tcp("http", "0.0.0.0:0")
    assert not is_loopback(anywhere)
    anywhere.close()
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    assert is_loopback(unix)
    unix.close()


def test_a_port_in_use_is_a_clear_error() -> None:
    taken = tcp_listener()
    host, port = taken.getsockname()
    with pytest.raises(BadAddress, match="http.listen: cannot listen on"):
        bind_tcp("http", f"{host}:{port}")
    taken.close()


def test_open_listener_binds_the_configured_fronts(tmp_path: Path) -> None:
    listener = open_listener(tmp_path / "s.sock", {"http": "127.0.0.1:0", "wyoming": ""})
    try:
        assert set(listener.fronts) == {"http"}
        assert listener.fronts["http"].getsockname()[0] == "127.0.0.1"
        assert not listener.activated
    finally:
        listener.close_all()
    assert not (tmp_path / "s.sock").exists()


def test_configured_listen_reads_only_strings() -> None:
    assert configured_listen({"http": {"listen": "127.0.0.1:1"}}, "http") == "127.0.0.1:1"
    assert configured_listen({}, "http") == ""
    assert configured_listen({"http": {"listen": 5}}, "http") == ""


def test_a_front_without_its_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "whisperd.fronts.http", None)  # as if not importable
    with pytest.raises(FrontRefused, match=r"whisperd\[serve\]"):
        load_factory("http")


SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"


@pytest.mark.skipif(not os.path.exists(SOCKET_ACTIVATE), reason="systemd-socket-activate")
def test_named_sockets_through_systemd_socket_activate(tmp_path: Path) -> None:
    """systemd's own tool passes two sockets with LISTEN_FDNAMES, as the user manager does;
    it starts the program at the first connection."""
    port = free_port()
    script = (
        "from pathlib import Path\n"
        "from whisperd.daemon.listener import open_listener\n"
        f"l = open_listener(Path({str(tmp_path / 'own.sock')!r}), {{'http': '', 'wyoming': ''}})\n"
        "print(l.activated, l.sock.family.name, sorted(l.fronts),"
        " l.fronts['http'].getsockname()[1])\n"
    )
    tool = subprocess.Popen(
        [SOCKET_ACTIVATE, "-l", str(tmp_path / "w.sock"), "-l", f"127.0.0.1:{port}"]
        + ["--fdname=whisperd.socket:http", sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = connect_when_listening(port, tool)
        out, err = tool.communicate(timeout=60)
        client.close()
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert tool.returncode == 0, err
    assert out.split() == ["True", "AF_UNIX", "['http']", str(port)]
    assert not (tmp_path / "own.sock").exists()  # activated: nothing bound of our own


def connect_when_listening(port: int, tool: subprocess.Popen[str]) -> socket.socket:
    deadline = time.monotonic() + 30
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            if tool.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def free_port() -> int:
    probe = tcp_listener()
    port = int(probe.getsockname()[1])
    probe.close()
    return port
