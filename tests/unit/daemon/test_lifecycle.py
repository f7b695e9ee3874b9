"""The lifecycle (whisperd/daemon/lifecycle.py) in-process, on a real socket in a temp
directory, with a fake engine: stopping, limits on connections, timeouts."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.daemon.fakes import FakeEngine, tone, wav_bytes
from tests.unit.daemon.test_connection import PCM, Client
from whisperd.config import DaemonConfig
from whisperd.daemon.connection import Connection
from whisperd.daemon.lifecycle import Daemon
from whisperd.daemon.limits import Limits
from whisperd.daemon.listener import Listener, bind_socket


@dataclass
class Running:
    daemon: Daemon
    engine: FakeEngine
    task: asyncio.Task[int]
    path: Path

    async def connect(self, greet: bool = True) -> Client:
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        client = Client(reader, writer)
        if greet:
            await client.hello()
        return client


@asynccontextmanager
async def running(
    tmp_path: Path, limits: Limits | None = None, config: DaemonConfig | None = None
) -> AsyncIterator[Running]:
    path = tmp_path / "whisperd.sock"
    engine = FakeEngine()
    config = config or DaemonConfig(pack_files=False)
    daemon = Daemon(config, bind_socket(path), None, limits, engine)
    task = asyncio.ensure_future(daemon.run())
    try:
        yield Running(daemon, engine, task, path)
    finally:
        if engine.gate is not None:
            engine.gate.set()
        if not task.done():
            daemon.on_signal(signal.SIGTERM)
        await asyncio.wait_for(task, 10)


def run(test: Any) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


async def start_file(client: Client, rid: Any) -> None:
    data = wav_bytes(tone(0.5))
    await client.ask({"type": "transcribe", "id": rid, "format": "file"})
    await client.send({"type": "audio", "id": rid, "size": len(data)}, data)
    await client.send({"type": "end", "id": rid})


def test_sigterm_tells_every_client_with_a_request_in_flight(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path) as r:
            r.engine.gate = threading.Event()  # the worker holds the first request
            decoding, queued, streaming, idle = [await r.connect() for _ in range(4)]
            await start_file(decoding, "running")
            while not r.engine.calls:
                await asyncio.sleep(0.01)
            await start_file(queued, "queued")
            request = {"type": "transcribe", "id": "stream", "format": "pcm", **PCM}
            await streaming.ask(request)
            await streaming.send({"type": "audio", "id": "stream", "size": 3200}, bytes(3200))
            await idle.ask({"type": "ping", "id": 1})
            r.daemon.on_signal(signal.SIGTERM)
            for client, rid in ((decoding, "running"), (queued, "queued"), (streaming, "stream")):
                reply = await client.recv()
                assert reply is not None and reply["code"] == "shutting_down", reply
                assert reply["id"] == rid
                assert await client.recv() is None
            assert await idle.recv() is None  # nothing in flight: just closed
            assert await asyncio.wait_for(r.task, 10) == 0
            assert not r.path.exists()
            jobs = [job for job in r.daemon.scheduler.queued]
            assert all(job.cancelled for job in jobs)  # the running decode stops early

    run(test)


def test_a_client_that_reads_nothing_does_not_hold_up_the_stop(tmp_path: Path) -> None:
    """Replies waiting for a client that never reads them: SIGTERM still ends the loop
    (the connection is aborted after the stop grace, not flushed forever)."""

    async def test() -> None:
        async with running(tmp_path, Limits(stop_grace=0.5)) as r:
            client = await r.connect()
            await client.ask({"type": "ping", "id": 1})
            (connection,) = r.daemon.state.connections
            assert isinstance(connection, Connection)
            connection.writer.write(bytes(64 * 1024 * 1024))  # far over the socket buffer
            r.daemon.on_signal(signal.SIGTERM)
            assert await asyncio.wait_for(asyncio.shield(r.task), 20) == 0
            client.writer.close()

    run(test)


SHORT = Limits(idle_connection=0.3, stalled_stream=0.3)
# For a client that is never silent for long: the limit is far above its gaps.
PATIENT = Limits(idle_connection=1.5, stalled_stream=1.5)


def test_an_idle_connection_is_closed_and_the_idle_exit_follows(tmp_path: Path) -> None:
    async def test() -> None:
        config = DaemonConfig(idle_timeout=0.2)
        async with running(tmp_path, SHORT, config) as r:
            client = await r.connect()
            assert await client.ask({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
            assert await client.recv() is None  # closed by the daemon after 0.3 s
            assert await asyncio.wait_for(r.task, 10) == 0  # then the idle exit
            assert not r.path.exists()

    run(test)


def test_a_stalled_stream_is_dropped_with_timeout(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, SHORT) as r:
            client = await r.connect()
            await client.ask({"type": "transcribe", "id": "s", "format": "pcm", **PCM})
            await client.send({"type": "audio", "id": "s", "size": 3200}, bytes(3200))
            reply = await client.recv()
            assert reply is not None and reply["code"] == "timeout" and reply["id"] == "s"
            assert await client.recv() is None

    run(test)


def test_timeouts_never_cut_an_active_stream_or_a_long_decode(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, PATIENT) as r:
            client = await r.connect()
            await client.ask({"type": "transcribe", "id": "s", "format": "pcm", **PCM})
            # 2 s of audio, longer than the 1.5 s limit, a frame every 0.05 s (30 times
            # less than the limit: a loaded machine's late wake-ups do not matter)
            for _ in range(40):
                await client.send({"type": "audio", "id": "s", "size": 3200}, tone_pcm())
                await asyncio.sleep(0.05)
            r.engine.gate = threading.Event()  # the decode takes longer than the timeout
            await client.send({"type": "end", "id": "s"})
            await asyncio.sleep(2.0)
            r.engine.gate.set()
            replies = await client.until_result("s")
            assert replies[-1]["type"] == "result", replies
            # The idle time starts after the answer: the client can still ask.
            assert await client.ask({"type": "ping", "id": 2}) == {"type": "pong", "id": 2}

    run(test)


def tone_pcm() -> bytes:
    from tests.unit.daemon.fakes import s16le

    return s16le(tone(0.1))


def test_connections_over_the_cap_are_refused(tmp_path: Path) -> None:
    async def test() -> None:
        async with running(tmp_path, Limits(max_connections=2)) as r:
            first, second = await r.connect(), await r.connect()
            third = await r.connect(greet=False)
            refused = await third.recv()
            assert refused is not None and refused["code"] == "too_many_connections"
            assert await third.recv() is None
            first.writer.close()
            while len(r.daemon.state.connections) > 1:
                await asyncio.sleep(0.01)
            fourth = await r.connect()  # a place is free again
            assert await fourth.ask({"type": "ping", "id": 4}) == {"type": "pong", "id": 4}
            assert await second.ask({"type": "ping", "id": 2}) == {"type": "pong", "id": 2}

    run(test)


class FailingListener(socket.socket):
    """A listening socket whose accept fails like a process out of file descriptors."""

    failing = True
    accepts = 0

    def accept(self) -> tuple[socket.socket, Any]:
        FailingListener.accepts += 1
        if FailingListener.failing:
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_accept_errors_back_off_instead_of_spinning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def test() -> None:
        path = tmp_path / "whisperd.sock"
        sock = FailingListener(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.listen(8)
        daemon = Daemon(
            DaemonConfig(), Listener(sock, path, activated=False), None, Limits(accept_backoff=0.5)
        )
        task = asyncio.ensure_future(daemon.run())
        reader, writer = await asyncio.open_unix_connection(str(path))
        await asyncio.sleep(0.3)  # within the first rest
        assert FailingListener.accepts == 1  # not thousands: no spin
        FailingListener.failing = False  # descriptors free again
        client = Client(reader, writer)
        await client.hello()  # served after the rest
        assert await client.ask({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
        daemon.on_signal(signal.SIGTERM)
        assert await asyncio.wait_for(task, 10) == 0

    with caplog.at_level(logging.ERROR, logger="whisperd"):
        run(test)
    assert len([r for r in caplog.records if "accept failed" in r.message]) == 1
