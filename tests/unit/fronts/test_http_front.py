"""The HTTP front in a real daemon lifecycle with the fake engine, on a real loopback
socket, driven by OpenAI's own client (openai.AsyncOpenAI) and by aiohttp's client and raw
sockets for what the official client cannot send."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.unit.fronts.support import Served, a_wav, run, serving
from whisperd.cli import format_status
from whisperd.client import Client
from whisperd.config import DaemonConfig
from whisperd.daemon.lifecycle import Daemon
from whisperd.daemon.limits import Limits
from whisperd.daemon.listener import bind_socket, bind_tcp
from whisperd.fronts import FrontRefused
from whisperd.protocol import MAX_AUDIO_FRAME


def client_of(served: Served, key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0)


async def create(served: Served, **kwargs: Any) -> Any:
    kwargs.setdefault("file", ("a.wav", a_wav(), "audio/wav"))
    # Closed inside the loop that made it: a client left to the garbage collector closes
    # its pool later, in no loop, and asyncio logs that as an error in some other test.
    async with client_of(served) as client:
        return await client.audio.transcriptions.create(model="whisper-1", **kwargs)


async def create_streamed(served: Served, **kwargs: Any) -> list[Any]:
    """The events of a ``stream=True`` request, read before its client is closed."""
    kwargs.setdefault("file", ("a.wav", a_wav(), "audio/wav"))
    async with client_of(served) as client:
        stream = await client.audio.transcriptions.create(model="whisper-1", stream=True, **kwargs)
        return [event async for event in stream]


def test_every_response_format_through_the_openai_client(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            as_json = await create(s)
            assert as_json.text == "16000 samples"  # the fake engine names what it heard
            assert await create(s, response_format="text") == "16000 samples\n"
            srt = await create(s, response_format="srt")
            assert srt == "1\n00:00:00,000 --> 00:00:01,000\n16000 samples\n"
            vtt = await create(s, response_format="vtt")
            assert vtt == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n16000 samples\n"
            verbose = await create(
                s, response_format="verbose_json", timestamp_granularities=["segment"]
            )
            assert verbose.text == "16000 samples" and verbose.duration == 1.0
            assert verbose.segments[0].start == 0.0 and verbose.segments[0].end == 1.0

    run(test)


def test_word_timestamps_through_the_openai_client(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            verbose = await create(
                s, response_format="verbose_json", timestamp_granularities=["word", "segment"]
            )
            assert s.engine.calls[-1][2]["word_timestamps"] is True
            assert [(w.word, w.start, w.end) for w in verbose.words] == [
                ("16000", 0.0, 0.5),
                ("samples", 0.5, 1.0),
            ]
            assert verbose.segments[0].text == "16000 samples"
            plain = await create(
                s, response_format="verbose_json", timestamp_granularities=["segment"]
            )
            assert plain.words is None  # not asked: not timed, not sent
            assert "word_timestamps" not in s.engine.calls[-1][2]

    run(test)


def test_stream_true_gives_openai_text_events(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            events = await create_streamed(s)
            assert [e.type for e in events] == ["transcript.text.delta", "transcript.text.done"]
            assert events[0].delta == "16000 samples"
            assert events[1].text == "16000 samples"

    run(test)


def test_the_fields_reach_the_job(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            await create(s, language="de", prompt="Whisperd, Debian.", temperature=0.0)
            _, _, options = s.engine.calls[-1]
            assert options["language"] == "de"
            assert options["initial_prompt"] == "Whisperd, Debian."

    run(test)


def test_models_and_health(tmp_path: Path) -> None:
    async def test() -> None:
        config = DaemonConfig(pack_files=False, model="small.en")
        async with serving(tmp_path, config=config) as s:
            async with client_of(s) as client:
                models = await client.models.list()
            assert [m.id for m in models.data] == ["whisper-1", "small.en"]
            async with aiohttp.ClientSession() as session:
                async with session.get(s.url + "/health") as response:
                    assert response.status == 200
                    assert (await response.json())["status"] == "ok"

    run(test)


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"response_format": "xml"}, 400, "response_format"),
        ({"language": "klingon"}, 400, "language"),
        ({"temperature": "7"}, 400, "temperature"),
        ({"stream": "true", "response_format": "srt"}, 400, "stream"),
        ({"timestamp_granularities[]": "word", "response_format": "json"}, 400, None),
        ({"timestamp_granularities[]": "char", "response_format": "verbose_json"}, 400, None),
        ({"stream": "maybe"}, 400, "stream"),
    ],
)
def test_bad_fields_are_openai_400s(
    tmp_path: Path, fields: dict[str, str], status: int, param: str | None
) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            status_seen, body = await post_form(s, fields, a_wav())
            assert status_seen == status
            assert set(body["error"]) == {"message", "type", "param", "code"}
            assert body["error"]["type"] == "invalid_request_error"
            if param is not None:
                assert body["error"]["param"] == param

    run(test)


def test_garbage_audio_is_an_openai_400_naming_the_file(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            with pytest.raises(openai.BadRequestError) as caught:
                await create(s, file=("a.wav", os.urandom(50_000), "audio/wav"))
            error = caught.value.body
            assert isinstance(error, dict)
            assert error["param"] == "file" and error["code"] == "bad_audio"
            assert "Traceback" not in json.dumps(error)

    run(test)


def test_a_form_without_a_file_is_refused(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            status, body = await post_form(s, {"model": "whisper-1"}, None)
            assert status == 400 and body["error"]["param"] == "file"
            assert body["error"]["code"] == "missing_file"

    run(test)


def test_unknown_paths_and_methods_answer_in_openai_shape(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s, aiohttp.ClientSession() as session:
            async with session.get(s.url + "/v1/chat/completions") as response:
                assert response.status == 404
                assert (await response.json())["error"]["code"] == "unknown_url"
            async with session.get(s.url + "/v1/audio/transcriptions") as response:
                assert response.status == 405
                assert "error" in await response.json()
            async with session.post(s.url + "/v1/audio/transcriptions", data=b"x") as response:
                assert response.status == 400  # not a multipart form
                assert (await response.json())["error"]["code"] == "invalid_content_type"

    run(test)


async def post_form(
    served: Served,
    fields: dict[str, str],
    audio: bytes | None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    if audio is not None:
        form.add_field("file", audio, filename="a.wav", content_type="audio/wav")
    async with aiohttp.ClientSession() as session:
        async with session.post(
            served.url + "/v1/audio/transcriptions", data=form, headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)


# -- the size cap: refused before the body is read entirely


def small_cap() -> DaemonConfig:
    return DaemonConfig(pack_files=False, max_audio_bytes=MAX_AUDIO_FRAME)  # 4 MiB


async def raw_exchange(port: int, head: bytes, body_part: bytes) -> bytes:
    """Send the head and part of a body that never ends; whatever the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body_part)
    try:
        await writer.drain()
    except ConnectionError:
        pass
    answer = await asyncio.wait_for(reader.read(65536), 60)
    writer.close()
    return answer


def multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()


def test_an_announced_oversized_upload_is_refused_before_its_body(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path, config=small_cap()) as s:
            head = (
                "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: multipart/form-data; boundary=b0undary\r\n"
                f"Content-Length: {10 * 1024**3}\r\n\r\n"
            ).encode()
            answer = await raw_exchange(s.port, head, multipart_head("b0undary"))
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b'"code": "audio_too_large"' in answer

    run(test)


def test_expect_100_continue_is_refused_before_the_body_is_sent(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path, config=small_cap()) as s:
            head = (
                "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: localhost\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nExpect: 100-continue\r\n"
                f"Content-Length: {64 * 1024**2}\r\n\r\n"
            ).encode()
            answer = await raw_exchange(s.port, head, b"")
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    run(test)


def test_a_chunked_upload_is_cut_off_at_the_cap(tmp_path: Path) -> None:
    """No Content-Length: the running count refuses the file as soon as it passes the cap,
    while the client has not finished sending (it never does here)."""

    async def test() -> None:
        async with serving(tmp_path, config=small_cap()) as s:
            head = (
                b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            body = multipart_head("b0undary") + b"\0" * (MAX_AUDIO_FRAME + 1024 * 1024)
            chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n"  # no final chunk
            answer = await raw_exchange(s.port, head, chunked)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert s.daemon.scheduler.held_audio() == 0  # the refused job holds nothing

    run(test)


# -- who may connect


def token_file(tmp_path: Path, token: str = "s3cret-token") -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def test_a_token_is_required_when_configured(tmp_path: Path) -> None:
    async def test() -> None:
        raw = {"http": {"token_file": str(token_file(tmp_path))}}
        async with serving(tmp_path, raw=raw) as s:
            with pytest.raises(openai.AuthenticationError) as caught:
                async with client_of(s, "wrong") as wrong:
                    await wrong.audio.transcriptions.create(
                        model="whisper-1", file=("a.wav", a_wav(), "audio/wav")
                    )
            assert "s3cret" not in str(caught.value.body)
            async with client_of(s, "s3cret-token") as good:
                result = await good.audio.transcriptions.create(
                    model="whisper-1", file=("a.wav", a_wav(), "audio/wav")
                )
            assert result.text == "16000 samples"

    run(test)


def test_non_loopback_without_a_token_is_refused_at_start(tmp_path: Path) -> None:
    async def test() -> None:
        listener = bind_socket(tmp_path / "whisperd.sock")
        listener.fronts["http"] = bind_tcp("http", "0.0.0.0:0")
        daemon = Daemon(DaemonConfig(), listener, None, None, None)
        daemon.build_fronts({})
        assert await asyncio.wait_for(daemon.run(), 60) == 2
        assert listener.fronts["http"].fileno() == -1

    run(test)


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    path.chmod(0o644)
    listener = bind_socket(tmp_path / "whisperd.sock")
    listener.fronts["http"] = bind_tcp("http", "127.0.0.1:0")
    daemon = Daemon(DaemonConfig(), listener, None, None, None)
    with pytest.raises(FrontRefused, match="readable by other users"):
        daemon.build_fronts({"http": {"token_file": str(path)}})
    listener.close_all()


@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example:8765"}, {"Origin": "https://evil.example"}],
)
def test_web_pages_are_refused_on_loopback(tmp_path: Path, headers: dict[str, str]) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            status, body = await post_form(s, {}, a_wav(), headers)
            assert status == 403 and body["error"]["code"].startswith("forbidden")
            assert not s.engine.calls

    run(test)


# -- the daemon's life


def test_an_idle_keep_alive_connection_does_not_keep_the_daemon_up(tmp_path: Path) -> None:
    async def test() -> None:
        config = DaemonConfig(pack_files=False, idle_timeout=0.5)
        async with (
            serving(tmp_path, config=config, hold=True) as s,
            aiohttp.ClientSession() as session,
        ):
            form = aiohttp.FormData()
            form.add_field("file", a_wav(), filename="a.wav")
            async with session.post(s.url + "/v1/audio/transcriptions", data=form) as response:
                assert response.status == 200
                await response.read()
            assert response.headers.get("Connection", "keep-alive").lower() != "close"
            s.release()
            # The session keeps its connection open; the daemon exits idle all the same.
            assert await asyncio.wait_for(asyncio.shield(s.task), 90) == 0

    run(test)


def test_a_request_in_progress_holds_the_idle_exit(tmp_path: Path) -> None:
    async def test() -> None:
        config = DaemonConfig(pack_files=False, idle_timeout=0.3)
        async with serving(tmp_path, config=config, hold=True) as s:
            s.engine.gate = threading.Event()
            request = asyncio.ensure_future(create(s))
            while not s.engine.calls:
                await asyncio.sleep(0.02)
            s.release()  # from here only the HTTP request holds the daemon
            await asyncio.sleep(1.0)  # past the idle timeout, the decode still held
            assert not s.task.done()
            s.engine.gate.set()
            assert (await request).text == "16000 samples"
            assert await asyncio.wait_for(asyncio.shield(s.task), 90) == 0

    run(test)


def test_status_counts_the_front_requests_in_flight(tmp_path: Path) -> None:
    """``whisperctl status`` over the Unix socket sees the HTTP request the worker holds
    (``connections`` counts Unix clients only), and none once it is answered."""

    def status() -> dict[str, Any]:
        with Client.connect(str(tmp_path / "whisperd.sock"), autostart=False) as client:
            return client.status()

    async def test() -> None:
        async with serving(tmp_path) as s:
            assert (await asyncio.to_thread(status))["front_requests"] == 0
            s.engine.gate = threading.Event()
            request = asyncio.ensure_future(create(s))
            while not s.engine.calls:
                await asyncio.sleep(0.02)
            during = await asyncio.to_thread(status)
            assert during["front_requests"] == 1 and during["connections"] == 1
            assert during["idle_exit_in"] is None
            assert "1 HTTP/Wyoming request(s) in flight" in format_status(during)
            s.engine.gate.set()
            assert (await request).text == "16000 samples"
            assert (await asyncio.to_thread(status))["front_requests"] == 0

    run(test)


def test_sigterm_answers_a_request_in_flight_with_a_503(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            s.engine.gate = threading.Event()
            request = asyncio.ensure_future(post_form(s, {}, a_wav()))
            while not s.engine.calls:
                await asyncio.sleep(0.02)
            s.daemon.on_signal(15)
            status, body = await asyncio.wait_for(request, 60)
            s.engine.gate.set()
            assert status == 503 and body["error"]["code"] == "shutting_down"

    run(test)


def test_too_many_requests_at_once_are_told_429(tmp_path: Path) -> None:
    async def test() -> None:
        limits = Limits(max_connections=1)
        async with serving(tmp_path, limits=limits) as s:
            s.engine.gate = threading.Event()
            first = asyncio.ensure_future(post_form(s, {}, a_wav()))
            while not s.engine.calls:
                await asyncio.sleep(0.02)
            status, body = await post_form(s, {}, a_wav())
            assert status == 429 and body["error"]["code"] == "too_many_requests"
            s.engine.gate.set()
            assert (await first)[0] == 200

    run(test)


def test_a_client_gone_mid_decode_cancels_its_job(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            s.engine.gate = threading.Event()
            audio = a_wav()
            body = multipart_head("b0undary") + audio + b"\r\n--b0undary--\r\n"
            head = (
                "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: multipart/form-data; boundary=b0undary\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
            writer.write(head + body)
            while not s.engine.calls:
                await asyncio.sleep(0.02)
            jobs = list(s.daemon.scheduler.jobs)
            assert len(jobs) == 1 and not jobs[0].cancelled
            writer.close()
            for _ in range(200):
                if jobs[0].cancelled:
                    break
                await asyncio.sleep(0.02)
            assert jobs[0].cancelled, "the job of a client gone was not cancelled"
            assert s.daemon.state.front_requests == 0
            s.engine.gate.set()

    run(test)


def test_a_stalled_upload_is_dropped_with_a_408(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path, limits=Limits(stalled_stream=0.5)) as s:
            head = (
                b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
                b"Content-Length: 100000\r\n\r\n"
            )
            answer = await raw_exchange(s.port, head, multipart_head("b0undary") + b"RIFF")
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b'"code": "timeout"' in answer
            assert s.daemon.state.front_requests == 0
            assert s.daemon.scheduler.held_audio() == 0

    run(test)
