"""The Wyoming front without the model: its bounded event reader, its configuration, the
loopback rule, and its connection handling on a real TCP socket with a fake engine
(tests/integration/test_wyoming.py has the real model)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info

from tests.fdlimit import exhaust_descriptors
from tests.unit.daemon.fakes import FakeEngine, s16le, tone
from whisperd.config import ConfigError, DaemonConfig, WyomingConfig, load_section, read_toml
from whisperd.daemon.limits import Limits
from whisperd.daemon.scheduler import Scheduler
from whisperd.daemon.state import DaemonState
from whisperd.fronts import FrontConfig, FrontRefused
from whisperd.fronts.wyoming import describe, make_front
from whisperd.fronts.wyoming.events import (
    MAX_HEADER,
    WyomingError,
    encode_event,
    read_event,
)
from whisperd.fronts.wyoming.server import WyomingFront, check_address

RATE = 16000


def reader_of(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=MAX_HEADER)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


# -- the reader


def test_an_event_reads_back_as_the_package_wrote_it() -> None:
    async def test() -> None:
        sent = AudioChunk(rate=RATE, width=2, channels=1, audio=b"\x01\x02" * 100).event()
        got = await read_event(reader_of(encode_event(sent) + encode_event(Describe().event())))
        assert got is not None
        assert (got.type, got.payload) == (sent.type, sent.payload)
        assert got.data == sent.data
        following = await read_event(reader_of(encode_event(Describe().event())))
        assert following is not None and following.type == "describe"

    asyncio.run(test())


@pytest.mark.parametrize("name", ["payload_length", "data_length"])
def test_a_huge_length_is_refused_before_a_byte_of_it_is_read(name: str) -> None:
    """The header alone, the stream left open: reading what it announces would wait."""

    async def test() -> None:
        header = json.dumps({"type": "audio-chunk", name: 10**12}).encode() + b"\n"
        with pytest.raises(WyomingError) as caught:
            await asyncio.wait_for(read_event(reader_of(header, eof=False)), 5)
        assert caught.value.code == "too_large"

    asyncio.run(test())


def test_a_header_longer_than_the_limit_is_refused() -> None:
    async def test() -> None:
        with pytest.raises(WyomingError) as caught:
            await read_event(reader_of(b"{" + b" " * (MAX_HEADER + 10), eof=False))
        assert caught.value.code == "too_large"

    asyncio.run(test())


def test_a_truncated_event_is_an_error_and_a_clean_end_is_none() -> None:
    async def test() -> None:
        assert await read_event(reader_of(b"")) is None
        header = json.dumps({"type": "audio-chunk", "payload_length": 10}).encode() + b"\n"
        with pytest.raises(WyomingError):
            await read_event(reader_of(header + b"12345"))
        with pytest.raises(WyomingError):
            await read_event(reader_of(b'{"type": "describe"}'))  # no newline, then EOF

    asyncio.run(test())


# -- configuration and the loopback rule


def test_the_wyoming_section() -> None:
    assert load_section({}, "wyoming", WyomingConfig) == WyomingConfig()
    for listen in ("tcp://127.0.0.1:10300", "tcp://[::1]:10300", "localhost:1", "127.0.0.2:9"):
        load_section({"wyoming": {"listen": listen}}, "wyoming", WyomingConfig)
    remote = {"listen": "tcp://0.0.0.0:10300"}
    with pytest.raises(ConfigError, match="allow_remote"):
        load_section({"wyoming": remote}, "wyoming", WyomingConfig)
    load_section({"wyoming": {**remote, "allow_remote": True}}, "wyoming", WyomingConfig)
    for bad in ("127.0.0.1", "tcp://127.0.0.1", "unix:///tmp/x", "tcp://127.0.0.1:0", "x:y"):
        with pytest.raises(ConfigError, match="wyoming.listen"):
            load_section({"wyoming": {"listen": bad}}, "wyoming", WyomingConfig)
    with pytest.raises(ConfigError, match="wyoming.port"):
        load_section({"wyoming": {"port": 1}}, "wyoming", WyomingConfig)


def test_the_section_is_allowed_in_the_file(tmp_path: object) -> None:

    path = Path(str(tmp_path)) / "config.toml"
    path.write_text('[wyoming]\nlisten = "tcp://127.0.0.1:10300"\n')
    assert read_toml(path)["wyoming"]["listen"] == "tcp://127.0.0.1:10300"


def test_a_socket_beyond_loopback_is_refused_unless_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))  # bound, never listening: no one can connect
        with pytest.raises(FrontRefused, match="allow_remote"):
            check_address(sock, allow_remote=False)
        check_address(sock, allow_remote=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        check_address(sock, allow_remote=False)


def test_transcribe_options() -> None:
    config = DaemonConfig()
    asked = describe.parse_transcribe(
        {"language": "en-US", "transcript_names": ["Kitchen"], "transcript_terms": ["lux"]},
        config,
    )
    assert asked == describe.Asked("en", ["Kitchen", "lux"])
    assert (
        describe.parse_transcribe({"language": "en_GB", "name": "tiny.en"}, config).language == "en"
    )
    multilingual = DaemonConfig(model="/models/small")
    assert describe.parse_transcribe({"language": "de"}, multilingual).language == "de"
    with pytest.raises(WyomingError):
        describe.parse_transcribe({"language": "xx"}, multilingual)


# -- connections, with a fake engine


@dataclass
class Counting:
    active: int = 0
    begins: int = 0
    log: list[str] = field(default_factory=list)

    def begin(self) -> None:
        self.active += 1
        self.begins += 1

    def end(self) -> None:
        self.active -= 1


@dataclass
class Running:
    front: WyomingFront
    engine: FakeEngine
    activity: Counting
    port: int

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.port)


@asynccontextmanager
async def running(limits: Limits | None = None, streaming: bool = True) -> AsyncIterator[Running]:
    limits = limits or Limits()
    config = DaemonConfig(stream_window=0.0, draft_pause=0.0)
    engine = FakeEngine()
    scheduler = Scheduler(config, DaemonState(False), lambda: None, lambda: None, engine, limits)
    activity = Counting()
    raw = {"wyoming": {"streaming": streaming}}
    front = make_front(scheduler, activity, FrontConfig(config, raw, limits))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    await front.start(sock)
    try:
        yield Running(front, engine, activity, sock.getsockname()[1])
    finally:
        await front.stop(0.5)
        scheduler.shutdown()


async def until_closed(client: AsyncTcpClient) -> list[Event]:
    events = []
    while (event := await asyncio.wait_for(client.read_event(), 10)) is not None:
        events.append(event)
    return events


async def send_stream(client: AsyncTcpClient, seconds: float = 1.0, stop: bool = True) -> None:
    await client.write_event(Transcribe(language="en").event())
    await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
    await client.write_event(AudioChunk(RATE, 2, 1, s16le(tone(seconds))).event())
    if stop:
        await client.write_event(AudioStop().event())


def test_without_streaming_only_a_transcript_comes() -> None:
    async def test() -> None:
        async with running(streaming=False) as served, served.client() as client:
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), 10)
            assert event is not None
            assert not Info.from_event(event).asr[0].supports_transcript_streaming
            await send_stream(client)
            event = await asyncio.wait_for(client.read_event(), 10)
            assert event is not None and event.type == "transcript", event
            assert event.data["text"] == f"{RATE} samples"  # the fake engine's answer
            assert served.engine.calls[-1][2].get("live") is None
            assert served.activity.active == 0 and served.activity.begins == 1

    asyncio.run(test())


def test_an_idle_connection_is_closed_without_counting_as_activity() -> None:
    async def test() -> None:
        async with running(Limits(idle_connection=0.3)) as served, served.client() as client:
            assert await until_closed(client) == []  # no error: just closed
            assert served.activity.begins == 0

    asyncio.run(test())


def test_a_connection_that_never_sends_an_event_is_closed_sooner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection that has not sent one whole event (a port scan, a stuck client, a
    cap-filler) holds a slot for FIRST_EVENT_TIMEOUT, not the idle_connection timeout;
    one that has spoken keeps the idle timeout."""
    from whisperd.fronts.wyoming import session

    monkeypatch.setattr(session, "FIRST_EVENT_TIMEOUT", 0.3)

    async def test() -> None:
        async with running(Limits(idle_connection=600.0)) as served:
            async with served.client() as spoke:
                await spoke.write_event(Event("ping"))
                assert (await asyncio.wait_for(spoke.read_event(), 10)).type == "pong"  # type: ignore[union-attr]
                reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
                writer.write(b'{"type": "pi')  # half an event: not one yet
                assert await asyncio.wait_for(reader.read(), 10) == b""  # closed before 600 s
                writer.close()
                await spoke.write_event(Event("ping"))  # the one that spoke is still served
                assert (await asyncio.wait_for(spoke.read_event(), 10)).type == "pong"  # type: ignore[union-attr]

    asyncio.run(test())


def test_stopping_tells_a_client_in_the_middle_of_a_stream() -> None:
    async def test() -> None:
        async with running() as served, served.client() as client:
            await send_stream(client, stop=False)
            await client.write_event(Event("ping"))
            assert (await asyncio.wait_for(client.read_event(), 10)).type == "pong"  # type: ignore[union-attr]
            assert served.activity.active == 1
            await served.front.stop(0.2)
            events = await until_closed(client)
            assert [(e.type, e.data.get("code")) for e in events] == [("error", "shutting_down")]
            assert served.activity.active == 0

    asyncio.run(test())


def test_stopping_lets_a_running_request_finish_within_the_grace() -> None:
    async def test() -> None:
        async with running() as served, served.client() as client:
            served.engine.gate = threading.Event()
            await send_stream(client)
            while not served.engine.calls:  # the decode started and waits at the gate
                await asyncio.sleep(0.01)
            stopping = asyncio.ensure_future(served.front.stop(10))
            await asyncio.sleep(0.1)
            served.engine.gate.set()
            await stopping
            types = [e.type for e in await until_closed(client)]
            assert types == [
                "transcript-start",
                "transcript-chunk",
                "transcript",
                "transcript-stop",
            ]

    asyncio.run(test())


def test_a_stream_may_begin_with_its_first_chunk() -> None:
    """Some clients send transcribe, chunks and audio-stop without audio-start (the
    reference server takes that too)."""

    async def test() -> None:
        async with running(streaming=False) as served, served.client() as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioChunk(RATE, 2, 1, s16le(tone(1.0))).event())
            await client.write_event(AudioStop().event())
            event = await asyncio.wait_for(client.read_event(), 10)
            assert event is not None and event.type == "transcript", event
            assert event.data["text"] == f"{RATE} samples"

    asyncio.run(test())


def test_a_trickled_event_does_not_hold_the_connection() -> None:
    """The silence timers restart only when a whole event has arrived: a byte now and then
    inside one event's payload does not keep a stream (or its connection) alive."""

    async def received(reader: asyncio.StreamReader) -> bytes:
        data = b""
        try:
            while chunk := await reader.read(4096):
                data += chunk
        except ConnectionError:
            pass
        return data

    async def test() -> None:
        limits = Limits(idle_connection=0.5, stalled_stream=0.5)
        async with running(limits) as served:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            reading = asyncio.ensure_future(received(reader))
            fmt = {"rate": RATE, "width": 2, "channels": 1}
            start = json.dumps({"type": "audio-start", "data": fmt}).encode() + b"\n"
            chunk = json.dumps({"type": "audio-chunk", "data": fmt, "payload_length": 100})
            writer.write(start + chunk.encode() + b"\n")
            for _ in range(40):  # a byte every 0.1 s for 4 s: 8 times the stall timeout
                if reading.done():
                    break
                try:
                    writer.write(b"\x00")
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.1)
            answer = await asyncio.wait_for(reading, 10)
            writer.close()
            assert b'"code": "timeout"' in answer, answer
            assert served.activity.active == 0

    asyncio.run(test())


# -- out of descriptors


async def describes(port: int) -> bool:
    try:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), 10)
    except OSError:
        return False
    return event is not None and Info.is_type(event.type)


def test_out_of_file_descriptors_rests_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE on accept: the listener rests instead of spinning, logs one line (no
    traceback per attempt, as asyncio's own server would), and serves again once
    descriptors are free."""

    async def test() -> None:
        async with running(Limits(accept_backoff=0.05)) as served:
            await exhaust_descriptors(served.port)
            for _ in range(100):
                if await describes(served.port):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("not serving again after the descriptors came back")

    caplog.set_level(logging.INFO)
    asyncio.run(test())
    failed = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage()[:120] for r in failed]
    assert failed[0].exc_info is None
