"""The Wyoming front with the real model, spoken to by the wyoming package's own client
(as Home Assistant does): info, the same text as the Unix socket for the same audio,
streamed transcript chunks that make the transcript, hostile input, and the idle
accounting. Texts are compared between two paths on this machine, never pinned."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from wyoming.asr import Transcribe, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping

from tests.conftest import assert_heard, assert_heard_jfk_live, shared_audio, word_errors, words
from tests.integration.test_live import utterance
from tests.integration.wyoming_harness import (
    CHUNK,
    RATE,
    Harness,
    pcm_of,
    transcribe_wyoming,
)
from whisperd.config import DaemonConfig
from whisperd.daemon.limits import Limits

T = TypeVar("T")
LIMITS = Limits(max_connections=4, stalled_stream=2.0, idle_connection=4.0)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """No drafts or stream windows: each request is one decode at the end, so the same
    audio gives the same text on both paths whenever its chunks arrive."""
    config = DaemonConfig(stream_window=0.0, draft_pause=0.0, max_audio_seconds=20.0)
    with Harness(tmp_path_factory.mktemp("wyoming"), config, LIMITS) as running:
        yield running


@pytest.fixture(scope="module")
def jfk_pcm() -> bytes:
    from whisperd.audio import decode_file

    samples = decode_file(shared_audio("jfk.flac").read_bytes())
    return pcm_of(np.rint(samples * 32767))


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def ask(port: int, *events: Event) -> list[Event]:
    """Send raw-ish events with the package's client; every event until the server closes."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event)
        answers = []
        while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
            answers.append(event)
        return answers


async def raw(port: int, data: bytes) -> list[Event]:
    """Bytes no well-behaved client would send; the events back until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answers = []
    while (event := await asyncio.wait_for(async_read_event(reader), 30)) is not None:
        answers.append(event)
    writer.close()
    return answers


def header(kind: str, **fields: object) -> bytes:
    return json.dumps({"type": kind, **fields}).encode() + b"\n"


def error_code(events: list[Event]) -> str | None:
    errors = [Error.from_event(e) for e in events if Error.is_type(e.type)]
    assert len(errors) == 1, events
    return errors[0].code


# -- what a client sees


def test_describe_answers_info_with_the_model(harness: Harness) -> None:
    async def describe() -> Info:
        async with AsyncTcpClient("127.0.0.1", harness.port) as client:
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), 30)
            assert event is not None and Info.is_type(event.type), event
            return Info.from_event(event)

    info = run(describe())
    (program,) = info.asr
    assert program.name == "whisperd" and program.installed
    assert program.supports_transcript_streaming
    (model,) = program.models
    assert model.name == "tiny.en" and model.languages == ["en"]


def test_the_same_text_as_the_unix_socket(harness: Harness, jfk_pcm: bytes) -> None:
    received = run(transcribe_wyoming(harness.port, jfk_pcm))
    assert_heard_jfk_live(received.text)
    # A live job commits at the speaker's pauses as the audio and the decodes go, so two
    # runs of the same audio may cut it differently ("and so am I fellow" was seen once):
    # the front must give the daemon's words, within what that timing can move.
    heard = words(received.text)
    for options in ({"live": True, "language": "en"}, {"language": "en"}):
        reference = words(harness.unix_text(jfk_pcm, options))
        assert word_errors(reference, heard) <= 2, (options, received.text)


def test_transcript_chunks_make_the_transcript(harness: Harness, jfk_pcm: bytes) -> None:
    received = run(transcribe_wyoming(harness.port, jfk_pcm))
    assert received.types[0] == "transcript-start"
    assert received.types[-2:] == ["transcript", "transcript-stop"]
    chunks = [TranscriptChunk.from_event(e).text for e in received.of_type("transcript-chunk")]
    assert chunks and "".join(chunks) == received.text


def test_a_connection_serves_one_request_after_another(harness: Harness, jfk_pcm: bytes) -> None:
    async def twice() -> list[str]:
        texts = []
        async with AsyncTcpClient("127.0.0.1", harness.port) as client:
            for _ in range(2):
                await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
                for start in range(0, len(jfk_pcm), CHUNK):
                    chunk = jfk_pcm[start : start + CHUNK]
                    await client.write_event(AudioChunk(RATE, 2, 1, chunk).event())
                await client.write_event(AudioStop().event())
                while (event := await asyncio.wait_for(client.read_event(), 120)) is not None:
                    if event.type == "transcript":
                        texts.append(str(event.data["text"]))
                    if event.type == "transcript-stop":
                        break
        return texts

    first, second = run(twice())
    assert first == second
    assert_heard_jfk_live(first)


# -- hostile input: an error event, then the connection is closed


def test_a_huge_payload_length_is_refused_before_reading(harness: Harness) -> None:
    fmt = {"rate": RATE, "width": 2, "channels": 1}
    start = header("audio-start", data=fmt)
    # 1 TB announced and nothing sent: the answer comes at once, nothing is buffered.
    answers = run(raw(harness.port, start + header("audio-chunk", data=fmt, payload_length=10**12)))
    assert error_code(answers) == "too_large"
    harness.wait_until(lambda: harness.activity.active == 0)


def test_a_huge_data_length_is_refused_before_reading(harness: Harness) -> None:
    answers = run(raw(harness.port, header("transcribe", data_length=2**40)))
    assert error_code(answers) == "too_large"


@pytest.mark.parametrize(
    "data",
    [
        b"{not json\n",
        b"[1, 2]\n",
        b'{"type": 7}\n',
        header("describe", data_length="12"),
        header("describe", payload_length=-1),
        header("describe", data=[1]),
        b"[" * 5000 + b"\n",
        b"x" * 100_000,  # a header line over the limit, without a newline
    ],
    ids=[
        "bad-json",
        "array",
        "type-number",
        "length-string",
        "negative",
        "data-list",
        "deep",
        "long",
    ],
)
def test_a_bad_header_is_refused(harness: Harness, data: bytes) -> None:
    answers = run(raw(harness.port, data))
    assert error_code(answers) in ("bad_event", "too_large")


@pytest.mark.parametrize(
    "fmt",
    [
        {"rate": RATE, "width": 4, "channels": 1},
        {"rate": 100, "width": 2, "channels": 1},
        {"rate": RATE, "width": 2, "channels": 0},
        {"rate": "16000", "width": 2, "channels": 1},
        {"rate": RATE, "width": 2},
    ],
)
def test_a_wrong_audio_format_is_refused(harness: Harness, fmt: dict[str, object]) -> None:
    answers = run(ask(harness.port, Event("audio-start", dict(fmt))))
    assert error_code(answers) == "bad_audio_format"


def test_a_chunk_in_another_format_is_refused(harness: Harness) -> None:
    start = AudioStart(rate=RATE, width=2, channels=1).event()
    chunk = AudioChunk(rate=RATE * 2, width=2, channels=1, audio=bytes(640)).event()
    answers = run(ask(harness.port, start, chunk))
    assert error_code(answers) == "bad_audio_format"
    harness.wait_until(lambda: harness.activity.active == 0)


def test_audio_out_of_order_is_refused(harness: Harness) -> None:
    assert error_code(run(ask(harness.port, AudioStop().event()))) == "no_stream"
    start = AudioStart(rate=RATE, width=2, channels=1).event()
    assert error_code(run(ask(harness.port, start, start))) == "busy"


def test_a_bad_transcribe_is_refused(harness: Harness) -> None:
    for event in (
        Transcribe(name="large-v3").event(),
        Transcribe(language="de").event(),  # tiny.en speaks English only
        Event("transcribe", {"transcript_names": ["x" * 65]}),
        Event("transcribe", {"language": ["en"]}),
    ):
        assert error_code(run(ask(harness.port, event))) == "bad_field"


def test_audio_over_the_duration_cap_is_refused(harness: Harness) -> None:
    """max_audio_seconds is 20 here: the scheduler's own check, inherited."""
    silence = bytes(RATE * 2)  # 1 s

    async def too_long() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", harness.port) as client:
            await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
            try:
                for _ in range(25):
                    await client.write_event(AudioChunk(RATE, 2, 1, silence).event())
            except ConnectionError:
                pass  # closed under our feet, as it should be
            answers = []
            while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
                answers.append(event)
            return answers

    assert error_code(run(too_long())) == "audio_too_large"
    harness.wait_until(lambda: harness.activity.active == 0)


def test_a_client_still_sending_after_the_error_reads_it(harness: Harness) -> None:
    """The error comes while the client is still writing its audio (it reads only at the
    end): the connection must not be reset under it, or the client sees "connection reset"
    instead of the reason. The CI saw that once in test_audio_over_the_duration_cap."""
    silence = bytes(RATE * 2)  # 1 s

    async def keeps_sending() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", harness.port) as client:
            await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
            try:
                for _ in range(120):  # 120 s, far over the 20 s cap
                    await client.write_event(AudioChunk(RATE, 2, 1, silence).event())
            except ConnectionError:
                pass  # the server stopped reading: what did it say?
            answers = []
            while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
                answers.append(event)
            return answers

    for _ in range(5):
        assert error_code(run(keeps_sending())) == "audio_too_large"
    harness.wait_until(lambda: harness.activity.active == 0)


def test_a_stalled_stream_times_out(harness: Harness) -> None:
    start = AudioStart(rate=RATE, width=2, channels=1).event()
    chunk = AudioChunk(rate=RATE, width=2, channels=1, audio=bytes(640)).event()
    answers = run(ask(harness.port, start, chunk))  # then silence: the stall timeout (2 s)
    assert error_code(answers) == "timeout"
    assert harness.activity.active == 0


def test_too_many_connections(harness: Harness) -> None:
    harness.wait_until(lambda: harness.sessions() == 0)

    async def crowd() -> list[Event]:
        clients = [AsyncTcpClient("127.0.0.1", harness.port) for _ in range(LIMITS.max_connections)]
        for client in clients:
            await client.connect()
            await client.write_event(Ping().event())
            assert await asyncio.wait_for(client.read_event(), 30) is not None  # served
        try:
            return await raw(harness.port, header("describe"))
        finally:
            for client in clients:
                await client.disconnect()

    assert error_code(run(crowd())) == "too_many_connections"
    harness.wait_until(lambda: harness.sessions() == 0)
    assert run(ask_info(harness.port))  # served again once they left


async def ask_info(port: int) -> bool:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 30)
        return event is not None and Info.is_type(event.type)


# -- the idle accounting


def test_an_idle_connection_is_not_activity(harness: Harness, jfk_pcm: bytes) -> None:
    """An open connection without a request must not keep the daemon up; a request does,
    from audio-start to its transcript, or until its client goes away."""
    begins = harness.activity.begins

    async def session() -> None:
        async with AsyncTcpClient("127.0.0.1", harness.port) as client:

            async def synced() -> None:  # a ping answered: every event before it was handled
                await client.write_event(Ping().event())
                while (event := await asyncio.wait_for(client.read_event(), 120)) is not None:
                    if event.type == "pong":
                        return

            await client.write_event(Describe().event())
            await synced()
            assert harness.activity.active == 0 and harness.activity.begins == begins
            await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
            await client.write_event(AudioChunk(RATE, 2, 1, jfk_pcm[:CHUNK]).event())
            await synced()
            assert harness.activity.active == 1
        # the client left in the middle of its stream

    run(session())
    harness.wait_until(lambda: harness.activity.active == 0)
    assert (
        harness.activity.begins
        == begins + 1
        == harness.activity.ends - (harness.activity.ends - begins - 1)
    )


def test_streamed_chunks_come_while_the_audio_arrives(tmp_path: Path) -> None:
    """With drafts on (the daemon's defaults), a stream paced like speech with pauses gets
    its text in pieces; joined, they are the transcript."""
    audio, spoken = utterance(tmp_path, [0, 5, 8], [2.5, 2.5])
    with Harness(tmp_path, DaemonConfig(), LIMITS) as running:
        received = run(transcribe_wyoming(running.port, pcm_of(audio), pace=1.0))
    chunks = [TranscriptChunk.from_event(e).text for e in received.of_type("transcript-chunk")]
    assert "".join(chunks) == received.text
    assert len(chunks) >= 2, chunks
    early = [
        e for t, e in received.events if e.type == "transcript-chunk" and t < received.stop_sent
    ]
    assert early, "no transcript-chunk came before audio-stop"
    assert_heard(spoken, received.text, max_word_errors=3)
