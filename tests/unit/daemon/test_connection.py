"""The connection and the scheduler on a real socketpair, with a fake engine (no model).

The daemon side runs ``Connection.serve`` on one end of ``socket.socketpair()``; the test
is the client on the other end, speaking the wire protocol of docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.unit.daemon.fakes import FakeEngine, s16le, silence, tone, wav_bytes
from whisperd.audio import SAMPLE_RATE
from whisperd.config import DaemonConfig
from whisperd.daemon.connection import Connection
from whisperd.daemon.limits import Limits
from whisperd.daemon.scheduler import Scheduler
from whisperd.daemon.state import DaemonState
from whisperd.protocol import (
    MAX_REPLY_FRAME,
    decode_message,
    encode_frame,
    encode_message,
    read_frame,
)


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, message: dict[str, Any], audio: bytes | None = None) -> None:
        data = encode_message(message)
        if audio is not None:
            data += encode_frame(audio)
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> dict[str, Any] | None:
        payload = await asyncio.wait_for(read_frame(self.reader, MAX_REPLY_FRAME, "reply"), 10)
        return None if payload is None else decode_message(payload)

    async def ask(self, message: dict[str, Any], audio: bytes | None = None) -> dict[str, Any]:
        await self.send(message, audio)
        reply = await self.recv()
        assert reply is not None
        return reply

    async def hello(self) -> None:
        assert (await self.ask({"type": "hello", "id": 0, "version": 1}))["type"] == "hello"

    async def transcribe(self, rid: Any, data: bytes, **fields: Any) -> list[dict[str, Any]]:
        fmt = "pcm" if fields else "file"
        request = {"type": "transcribe", "id": rid, "format": fmt, **fields}
        assert await self.ask(request) == {"type": "accepted", "id": rid}
        await self.send({"type": "audio", "id": rid, "size": len(data)}, data)
        await self.send({"type": "end", "id": rid})
        return await self.until_result(rid)

    async def until_result(self, rid: Any) -> list[dict[str, Any]]:
        replies = []
        while True:
            reply = await self.recv()
            assert reply is not None and reply["id"] == rid, reply
            replies.append(reply)
            if reply["type"] != "segment":
                return replies


@dataclass
class Served:
    client: Client
    scheduler: Scheduler
    engine: FakeEngine
    served: asyncio.Task[None]


@asynccontextmanager
async def serving(
    config: DaemonConfig | None = None, limits: Limits | None = None
) -> AsyncIterator[Served]:
    config = config or DaemonConfig()
    engine = FakeEngine()
    scheduler = Scheduler(config, DaemonState(False), lambda: None, lambda: None, engine, limits)
    try:
        async with connected(scheduler) as (client, served):
            yield Served(client, scheduler, engine, served)
    finally:
        scheduler.shutdown()


@asynccontextmanager
async def connected(scheduler: Scheduler) -> AsyncIterator[tuple[Client, asyncio.Task[None]]]:
    """A Connection on one end of a socketpair, a Client on the other."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    served = asyncio.ensure_future(Connection(scheduler, reader, writer).serve())
    c_reader, c_writer = await asyncio.open_unix_connection(sock=theirs)
    try:
        yield Client(c_reader, c_writer), served
    finally:
        c_writer.close()
        await asyncio.wait_for(served, 10)


@asynccontextmanager
async def serving_peer(first: Served) -> AsyncIterator[Client]:
    """A second client of the same scheduler."""
    async with connected(first.scheduler) as (client, _):
        yield client


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


PCM = {"encoding": "s16le", "sample_rate": SAMPLE_RATE, "channels": 1}


def test_hello_ping_status_and_the_handshake() -> None:
    async def test() -> None:
        async with serving() as s:
            early = await s.client.ask({"type": "ping", "id": 1})
            assert early["type"] == "error" and early["code"] == "handshake_required"
            hello = await s.client.ask({"type": "hello", "id": "h", "version": 1})
            assert hello["version"] == 1 and hello["limits"]["max_audio_frame"] > 0
            assert await s.client.ask({"type": "ping", "id": 2}) == {"type": "pong", "id": 2}
            status = await s.client.ask({"type": "status", "id": 3})
            assert status["type"] == "status" and status["model_loaded"] is False
            bad = await s.client.ask({"type": "hello", "id": 4, "version": 2})
            assert bad["code"] == "unsupported_version"
            assert await s.client.recv() is None  # fatal: the daemon closed the connection

    run(test)


def test_a_file_is_transcribed_with_segments_then_the_result() -> None:
    async def test() -> None:
        async with serving() as s:
            await s.client.hello()
            replies = await s.client.transcribe("a", wav_bytes(tone(1.0)))
            assert [r["type"] for r in replies] == ["segment", "result"]
            result = replies[-1]
            assert result["text"] == f"{SAMPLE_RATE} samples"
            assert result["draft"] is False and result["packed"] == 0
            assert result["model"] == "fake" and "total" in result["timings"]
            assert s.scheduler.requests_served == 1 and not s.scheduler.queued

    run(test)


def test_a_long_stream_is_cut_into_windows_while_it_arrives() -> None:
    async def test() -> None:
        config = DaemonConfig(stream_window=3.0, draft_pause=0.0)
        async with serving(config) as s:
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})  # windows need a loaded model
            rid = "stream"
            await s.client.ask({"type": "transcribe", "id": rid, "format": "pcm", **PCM})
            audio = s16le(np.concatenate([tone(4.0), silence(0.3), tone(4.0)]))
            step = SAMPLE_RATE // 5 * 2  # 0.2 s of s16le
            for start in range(0, len(audio), step):
                part = audio[start : start + step]
                await s.client.send({"type": "audio", "id": rid, "size": len(part)}, part)
                await asyncio.sleep(0.005)
            await s.client.send({"type": "end", "id": rid})
            replies = await s.client.until_result(rid)
            result = replies[-1]
            assert result["type"] == "result", result
            windows = [c for c in s.engine.calls if c[0] == "transcribe"]
            assert len(windows) >= 2  # at least one window while streaming, then the tail
            assert sum(size for _, size, _ in windows) == int(8.3 * SAMPLE_RATE)
            assert result["timings"]["streamed_decode"] > 0
            assert len(result["segments"]) == len(windows)

    run(test)


def test_a_pause_makes_a_draft_that_answers_the_release() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(draft_pause=0.25)) as s:
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            rid = "d"
            await s.client.ask({"type": "transcribe", "id": rid, "format": "pcm", **PCM})
            audio = s16le(np.concatenate([tone(1.0), silence(0.6)]))
            step = SAMPLE_RATE // 10 * 2
            for start in range(0, len(audio), step):
                part = audio[start : start + step]
                await s.client.send({"type": "audio", "id": rid, "size": len(part)}, part)
                await asyncio.sleep(0.02)
            while s.scheduler.busy:
                await asyncio.sleep(0.01)
            await s.client.send({"type": "end", "id": rid})
            result = (await s.client.until_result(rid))[-1]
            assert result["draft"] is True, result

    run(test)


def test_cancel_while_queued_and_unknown_requests() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(pack_files=False)) as s:
            await s.client.hello()
            gate = s.engine.gate = threading.Event()  # the worker holds request 1
            data = wav_bytes(tone(0.5))
            for rid in (1, 2):
                await s.client.ask({"type": "transcribe", "id": rid, "format": "file"})
                await s.client.send({"type": "audio", "id": rid, "size": len(data)}, data)
                await s.client.send({"type": "end", "id": rid})
            unknown = await s.client.ask({"type": "end", "id": "nope"})
            assert unknown["code"] == "unknown_request"
            cancelled = await s.client.ask({"type": "cancel", "id": 2})
            assert cancelled == {
                "type": "error",
                "id": 2,
                "code": "cancelled",
                "message": "request cancelled",
            }
            gate.set()
            replies = await s.client.until_result(1)
            assert replies[-1]["type"] == "result"
            while s.scheduler.queued:
                await asyncio.sleep(0.01)
            assert (await s.client.ask({"type": "cancel", "id": 2}))["code"] == "unknown_request"
            assert await s.client.ask({"type": "ping", "id": 3}) == {"type": "pong", "id": 3}
            assert len(s.engine.calls) == 1  # the cancelled request never reached the engine

    run(test)


def test_an_audio_frame_without_a_usable_size_closes_the_connection() -> None:
    async def test() -> None:
        async with serving() as s:
            await s.client.hello()
            reply = await s.client.ask({"type": "audio", "id": "x", "size": "10"}, b"0123456789")
            assert reply["code"] == "bad_frame" and reply["id"] == "x"
            assert await s.client.recv() is None

    run(test)


def test_audio_over_the_request_limit_is_refused_and_the_connection_stays() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(max_audio_bytes=1000)) as s:
            await s.client.hello()
            await s.client.ask({"type": "transcribe", "id": 1, "format": "file"})
            await s.client.send({"type": "audio", "id": 1, "size": 600}, bytes(600))
            reply = await s.client.ask({"type": "audio", "id": 1, "size": 600}, bytes(600))
            assert reply["code"] == "audio_too_large"
            late = await s.client.ask({"type": "end", "id": 1})
            assert late["code"] == "unknown_request"
            assert await s.client.ask({"type": "ping", "id": 2}) == {"type": "pong", "id": 2}

    run(test)


def test_a_flood_of_rejected_frames_does_not_flood_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each rejected frame is still answered, but only the first few are logged: a client
    that sends on after audio_too_large must not fill the journal."""

    async def test() -> None:
        async with serving(DaemonConfig(max_audio_bytes=1000)) as s:
            await s.client.hello()
            await s.client.ask({"type": "transcribe", "id": 1, "format": "file"})
            for _ in range(200):
                await s.client.send({"type": "audio", "id": 1, "size": 600}, bytes(600))
            # The first frame fits the limit; each one after it is refused.
            codes = [(await s.client.recv() or {}).get("code") for _ in range(199)]
            assert codes[0] == "audio_too_large" and set(codes[1:]) == {"unknown_request"}

    with caplog.at_level(logging.INFO, logger="whisperd"):
        run(test)
    logged = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert 1 <= len(logged) <= 10, [r.getMessage() for r in logged]


def test_load_and_unload_reply() -> None:
    async def test() -> None:
        async with serving() as s:
            await s.client.hello()
            loaded = await s.client.ask({"type": "load", "id": "l"})
            assert loaded["type"] == "loaded" and loaded["model"] == "fake"
            unloaded = await s.client.ask({"type": "unload", "id": "u"})
            assert unloaded == {"type": "unloaded", "id": "u", "was_loaded": True, "pending": False}
            assert not s.engine.loaded

    run(test)


def test_a_client_that_leaves_cancels_its_queued_work() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(pack_files=False)) as s:
            await s.client.hello()
            gate = s.engine.gate = threading.Event()
            data = wav_bytes(tone(0.5))
            for rid in (1, 2):
                await s.client.ask({"type": "transcribe", "id": rid, "format": "file"})
                await s.client.send({"type": "audio", "id": rid, "size": len(data)}, data)
                await s.client.send({"type": "end", "id": rid})
            while not s.engine.calls:
                await asyncio.sleep(0.01)
            jobs = list(s.scheduler.queued)
            s.client.writer.close()
            deadline = asyncio.get_running_loop().time() + 20  # generous: a loaded machine
            while not all(job.cancelled for job in jobs):
                assert asyncio.get_running_loop().time() < deadline, "queued work not cancelled"
                await asyncio.sleep(0.01)
            assert jobs
            gate.set()

    run(test)


def test_unload_answers_at_once_while_a_transcription_runs() -> None:
    async def test() -> None:
        async with serving() as s:
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            gate = s.engine.gate = threading.Event()  # the worker is busy until released
            data = wav_bytes(tone(0.5))
            await s.client.ask({"type": "transcribe", "id": 1, "format": "file"})
            await s.client.send({"type": "audio", "id": 1, "size": len(data)}, data)
            await s.client.send({"type": "end", "id": 1})
            while not s.engine.calls:
                await asyncio.sleep(0.01)
            unloaded = await s.client.ask({"type": "unload", "id": "u"})
            assert unloaded == {"type": "unloaded", "id": "u", "was_loaded": True, "pending": True}
            assert s.engine.loaded  # the running decode keeps it until it ends
            gate.set()
            replies = await s.client.until_result(1)
            assert replies[-1]["type"] == "result"
            while s.engine.loaded:
                await asyncio.sleep(0.01)
            status = await s.client.ask({"type": "status", "id": "s"})
            assert status["model_loaded"] is False

    run(test)
