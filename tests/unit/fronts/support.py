"""A whisperd (the real lifecycle and scheduler, the fake engine) serving its HTTP front on
a real loopback TCP socket, in-process: the tests use real HTTP clients against it."""

from __future__ import annotations

import asyncio
import signal
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
) -> AsyncIterator[Served]:
    listener = bind_socket(tmp_path / "whisperd.sock")
    listener.fronts["http"] = bind_tcp("http", listen)
    port = int(listener.fronts["http"].getsockname()[1])
    engine = FakeEngine()
    daemon = Daemon(config or DaemonConfig(pack_files=False), listener, None, limits, engine)
    daemon.build_fronts(raw or {})
    task = asyncio.ensure_future(daemon.run())
    await asyncio.sleep(0.05)  # the front starts before the daemon reports ready
    try:
        yield Served(daemon, engine, task, port)
    finally:
        if engine.gate is not None:
            engine.gate.set()
        if not task.done():
            daemon.on_signal(signal.SIGTERM)
        await asyncio.wait_for(task, 10)


def run(test: Any) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


def a_wav(seconds: float = 1.0) -> bytes:
    return wav_bytes(tone(seconds))
