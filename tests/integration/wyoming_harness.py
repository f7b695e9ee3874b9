"""The Wyoming front in-process for the tests and the benchmark: a real Scheduler with the
real model, the front on a real TCP socket on 127.0.0.1 (a free port), and whisperd's
own Unix-socket Connection on the same Scheduler, to compare the two paths on one
machine. The daemon side runs on an event loop in a thread; clients are the tests'."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event

from tests import wire
from whisperd.config import DaemonConfig
from whisperd.daemon.connection import Connection
from whisperd.daemon.limits import Limits
from whisperd.daemon.scheduler import Scheduler
from whisperd.daemon.state import DaemonState
from whisperd.fronts import FrontConfig
from whisperd.fronts.wyoming import WyomingFront, make_front

T = TypeVar("T")
RATE = 16000
CHUNK = 2048  # bytes: 64 ms, as Home Assistant's chunks are about


@dataclass
class CountingActivity:
    """The daemon's idle accounting as the front sees it (lifecycle.py counts the same)."""

    active: int = 0
    begins: int = 0
    ends: int = 0

    def begin(self) -> None:
        self.active += 1
        self.begins += 1

    def end(self) -> None:
        self.active -= 1
        self.ends += 1
        assert self.active >= 0, "end() without begin()"


@dataclass
class Harness:
    folder: Path
    config: DaemonConfig
    limits: Limits = field(default_factory=Limits)
    streaming: bool = True
    activity: CountingActivity = field(default_factory=CountingActivity)
    port: int = 0

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.unix_path = self.folder / "whisperd.sock"

    def call(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(factory(), self.loop).result(timeout)

    def __enter__(self) -> Harness:
        self.thread.start()
        self.call(self._start)
        return self

    async def _start(self) -> None:
        self.scheduler = Scheduler(
            self.config, DaemonState(False), lambda: None, lambda: None, None, self.limits
        )
        raw = {"wyoming": {"streaming": self.streaming}}
        front_config = FrontConfig(self.config, raw, self.limits)
        self.front: WyomingFront = make_front(self.scheduler, self.activity, front_config)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        await self.front.start(sock)
        self.unix = await asyncio.start_unix_server(self._unix_client, path=str(self.unix_path))
        await self.scheduler.load("warm-up")  # the figures and tests are of a warm model

    async def _unix_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await Connection(self.scheduler, reader, writer, self.limits).serve()

    def __exit__(self, *_: object) -> None:
        self.call(self._stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.scheduler.shutdown()

    async def _stop(self) -> None:
        await self.front.stop(1.0)
        self.unix.close()

    def sessions(self) -> int:
        return len(self.front.sessions)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "the condition did not come true in time"
            time.sleep(0.02)

    # -- the Unix-socket path, for the same audio

    def unix_text(self, pcm: bytes, options: dict[str, Any]) -> str:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(120)
        with sock:
            sock.connect(str(self.unix_path))
            assert wire.hello(sock)["type"] == "hello"
            request = {
                "type": "transcribe",
                "id": "unix",
                "format": "pcm",
                "encoding": "s16le",
                "sample_rate": RATE,
                "channels": 1,
                "options": options,
            }
            sock.sendall(wire.msg(request))
            assert wire.recv(sock)["type"] == "accepted"
            for start in range(0, len(pcm), CHUNK):
                part = pcm[start : start + CHUNK]
                sock.sendall(wire.msg({"type": "audio", "id": "unix", "size": len(part)}))
                sock.sendall(wire.frame(part))
            sock.sendall(wire.msg({"type": "end", "id": "unix"}))
            while (reply := wire.recv(sock))["type"] in ("segment", "commit"):
                pass
        assert reply["type"] == "result", reply
        return str(reply["text"])


@dataclass
class Received:
    """The events of one Wyoming transcription, each with when it arrived."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    stop_sent: float = 0.0

    @property
    def types(self) -> list[str]:
        return [event.type for _, event in self.events]

    def of_type(self, kind: str) -> list[Event]:
        return [event for _, event in self.events if event.type == kind]

    @property
    def text(self) -> str:
        (transcript,) = self.of_type("transcript")
        return str(Transcript.from_event(transcript).text)


def pcm_of(audio: np.ndarray[Any, Any]) -> bytes:
    return audio.astype("<i2").tobytes()


async def _collect(client: AsyncTcpClient, received: Received, streaming: bool) -> None:
    final = TranscriptStop if streaming else Transcript
    while True:
        event = await asyncio.wait_for(client.read_event(), 300)
        if event is None:
            return
        received.events.append((time.monotonic(), event))
        if final.is_type(event.type) or Error.is_type(event.type):
            return


async def transcribe_wyoming(
    port: int,
    pcm: bytes,
    streaming: bool = True,
    pace: float = 0.0,
    transcribe: Transcribe | None = None,
) -> Received:
    """One transcription with the wyoming package's own client, as Home Assistant sends
    it: transcribe, audio-start, 64 ms chunks (at ``pace`` times real time; 0: at once),
    audio-stop; the events until the transcript (and transcript-stop when streaming)."""
    received = Received()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        reading = asyncio.ensure_future(_collect(client, received, streaming))
        await client.write_event((transcribe or Transcribe(language="en")).event())
        await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        started = time.monotonic()
        for index, start in enumerate(range(0, len(pcm), CHUNK)):
            if pace:
                await asyncio.sleep(
                    max(0.0, started + index * CHUNK / 2 / RATE * pace - time.monotonic())
                )
            chunk = AudioChunk(rate=RATE, width=2, channels=1, audio=pcm[start : start + CHUNK])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        received.stop_sent = time.monotonic()
        await reading
    return received
