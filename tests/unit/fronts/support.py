"""A whisperd (the real lifecycle and scheduler, the fake engine) serving its HTTP front on
a real loopback TCP socket, in-process: the tests use real HTTP clients against it."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.unit.daemon.fakes import FakeEngine, tone, wav_bytes
from whisperd.config import DaemonConfig
from whisperd.daemon.lifecycle import Daemon
from whisperd.daemon.limits import Limits
from whisperd.daemon.listener import bind_socket, bind_tcp


@dataclass
class Served:
    daemon: Daemon
    engine: FakeEngine
    task: asyncio.Task[int]
    port: int
    holder: socket.socket | None = None

    def release(self) -> None:
        """Close the Unix connection that kept a short idle timeout from firing while the
        test started (from here the HTTP front alone decides)."""
        if self.holder is not None:
            self.holder.close()
            self.holder = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serving(
    tmp_path: Path,
    raw: Mapping[str, Any] | None = None,
    config: DaemonConfig | None = None,
    limits: Limits | None = None,
    listen: str = "127.0.0.1:0",
    hold: bool = False,
) -> AsyncIterator[Served]:
    """``hold``: a Unix connection made before the daemon starts keeps it up (a short idle
    timeout could otherwise fire before a loaded machine gets the HTTP client going)
    until ``Served.release``."""
    listener = bind_socket(tmp_path / "whisperd.sock")
    holder = None
    if hold:  # the socket listens already: the daemon accepts this as it starts
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        holder.connect(str(tmp_path / "whisperd.sock"))
    listener.fronts["http"] = bind_tcp("http", listen)
    port = int(listener.fronts["http"].getsockname()[1])
    engine = FakeEngine()
    daemon = Daemon(config or DaemonConfig(pack_files=False), listener, None, limits, engine)
    daemon.build_fronts(raw or {})
    task = asyncio.ensure_future(daemon.run())
    await asyncio.sleep(0.05)  # the front starts before the daemon reports ready
    try:
        yield Served(daemon, engine, task, port, holder)
    finally:
        if holder is not None:
            holder.close()
        if engine.gate is not None:
            engine.gate.set()
        if not task.done():
            daemon.on_signal(signal.SIGTERM)
        await asyncio.wait_for(task, 60)


def run(test: Any) -> None:
    asyncio.run(asyncio.wait_for(test(), 180))


def a_wav(seconds: float = 1.0) -> bytes:
    return wav_bytes(tone(seconds))
