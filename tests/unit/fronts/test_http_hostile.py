"""The HTTP front against hostile or broken clients, on real loopback sockets: malformed
requests and bodies, compressed bodies, connection floods, trickled uploads. Each is
answered as OpenAI's error object (where HTTP still allows an answer), logged as one quiet
line without the client's bytes, and costs the daemon nothing it cannot afford."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.fdlimit import exhaust_descriptors
from tests.unit.fronts.support import Served, a_wav, run, serving
from whisperd.daemon.limits import Limits

TRANSCRIPTIONS = b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"


async def exchange(port: int, raw: bytes | list[bytes]) -> bytes:
    """Send ``raw`` (while reading: the server may answer before it has read it all; a
    list is sent a part at a time) and everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for part in [raw] if isinstance(raw, bytes) else raw:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.2)  # the server reads the body as far as it came

    sending = asyncio.ensure_future(send())
    answer = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), 60):
            answer += chunk
    sending.cancel()
    writer.close()
    return answer


def parsed(answer: bytes) -> tuple[int, dict[str, str], Any]:
    """The status, headers (lower-case names) and JSON body of one HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), answer[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    return int(lines[0].split()[1]), headers, json.loads(body[:length])


def assert_openai_error(answer: bytes, status: int, code: str | None = None) -> dict[str, Any]:
    seen, headers, body = parsed(answer)
    assert seen == status, answer[:300]
    assert headers["content-type"].startswith("application/json")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


def form_request(body: bytes, extra: bytes = b"") -> bytes:
    return (
        TRANSCRIPTIONS
        + b"Connection: close\r\nContent-Type: multipart/form-data; boundary=xx\r\n"
        + b"Content-Length: %d\r\n" % len(body)
        + extra
        + b"\r\n"
        + body
    )


def quiet(caplog: pytest.LogCaptureFixture, secret: bytes = b"aaaaaaaa") -> None:
    """Nothing at WARNING or above (no traceback), nothing echoing the client's bytes."""
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage()[:200] for r in loud]
    assert all(secret.decode() not in r.getMessage() for r in caplog.records)
    assert all(r.exc_info is None for r in caplog.records)


# -- 1. malformed multipart bodies


def file_part(disposition_extra: bytes = b"") -> bytes:
    return b'--xx\r\nContent-Disposition: form-data; name="file"' + disposition_extra + b"\r\n\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        # a part header line over aiohttp's 8190 bytes
        form_request(file_part(b'; filename="' + b"a" * 500_000 + b'"') + b"RIFF\r\n--xx--\r\n"),
    ],
    ids=["part-header-too-long"],
)
def test_a_malformed_body_is_an_openai_400_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes | list[bytes]
) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            assert_openai_error(await exchange(s.port, raw), 400, "invalid_form")
            assert s.daemon.state.front_requests == 0

    caplog.set_level(logging.INFO)
    run(test)
    quiet(caplog)


# -- 3. requests aiohttp cannot parse


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX: " + b"a" * 200_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
        + b"".join(b"X%d: aaaaaaaa\r\n" % i for i in range(300))
        + b"\r\n",
        TRANSCRIPTIONS + b"Content-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: -1\r\nX: aaaaaaaa\r\n\r\n",
        b"GET /health\x01aaaaaaaa HTTP/1.1\r\nHost: localhost\r\n\r\n",
        # a chunked body whose chunk size is not a number (aiohttp's parser refuses it
        # as it arrives; had the handler begun reading, it would wait until the stall)
        TRANSCRIPTIONS
        + b"Content-Type: multipart/form-data; boundary=xx\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(file_part())
        + file_part()
        + b"\r\nzzaaaaaaaa\r\n",
    ],
    ids=["header-too-long", "300-headers", "negative-length", "control-in-path", "bad-chunk"],
)
def test_an_unparsable_request_is_an_openai_400_and_one_quiet_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            error = assert_openai_error(await exchange(s.port, raw), 400, "bad_request")
            assert "aaaaaaaa" not in error["message"]

    caplog.set_level(logging.INFO)
    run(test)
    quiet(caplog)
    said = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO


# -- 4. compressed bodies


def gzipped_form() -> bytes:
    return gzip.compress(file_part(b'; filename="a.wav"') + a_wav() + b"\r\n--xx--\r\n")


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br", b"identity, gzip"])
def test_a_compressed_body_is_refused_unread_with_a_415(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, encoding: bytes
) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            raw = form_request(gzipped_form(), b"Content-Encoding: " + encoding + b"\r\n")
            assert_openai_error(await exchange(s.port, raw), 415, "unsupported_encoding")
            assert not s.engine.calls

    caplog.set_level(logging.INFO)
    run(test)
    quiet(caplog)


def test_a_compressed_body_is_refused_before_the_client_sends_it(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            head = form_request(b"", b"Content-Encoding: gzip\r\nExpect: 100-continue\r\n")
            head = head.replace(b"Content-Length: 0", b"Content-Length: 1000000")
            assert_openai_error(await exchange(s.port, head), 415, "unsupported_encoding")

    run(test)


def test_an_identity_encoded_body_is_served(tmp_path: Path) -> None:
    async def test() -> None:
        async with serving(tmp_path) as s:
            body = file_part(b'; filename="a.wav"') + a_wav() + b"\r\n--xx--\r\n"
            answer = await exchange(s.port, form_request(body, b"Content-Encoding: identity\r\n"))
            status, _, result = parsed(answer)
            assert status == 200 and result["text"] == "16000 samples"

    run(test)


# -- 2. connection floods


async def served_ok(s: Served) -> bool:
    answer = await exchange(s.port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return answer.startswith(b"HTTP/1.1 200")


def test_connections_over_the_cap_are_told_503_and_closed(tmp_path: Path) -> None:
    """The cap is twice the requests in progress allowed (limits.max_connections)."""

    async def test() -> None:
        async with serving(tmp_path, limits=Limits(max_connections=2)) as s:
            idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
            try:
                await asyncio.sleep(0.2)  # all accepted (an idle one is not refused)
                answer = await exchange(s.port, b"")
                error = assert_openai_error(answer, 503, "too_many_connections")
                assert "at most 4 HTTP connections" in error["message"]
            finally:
                idle.pop().close()
            # One is free again: served (once the server has seen the close).
            for _ in range(100):
                if await served_ok(s):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("a connection under the cap was not served")
            for conn in idle:
                conn.close()

    run(test)


def test_out_of_file_descriptors_rests_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """EMFILE on accept: the listener rests instead of spinning, logs one line (no
    traceback per attempt), and serves again once descriptors are free."""

    async def test() -> None:
        limits = Limits(accept_backoff=0.05)
        async with serving(tmp_path, limits=limits) as s:
            await exhaust_descriptors(s.port)
            for _ in range(100):
                if await served_ok(s):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("not serving again after the descriptors came back")

    caplog.set_level(logging.INFO)
    run(test)
    failed = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage()[:120] for r in failed]
    assert failed[0].exc_info is None


# -- 7. uploads trickled to hold the daemon


def test_an_upload_trickled_under_the_stall_limit_is_still_cut_off(tmp_path: Path) -> None:
    """8 bytes every 0.1 s never stall 2 s, yet the upload must end: over the time its
    length allows at the slowest accepted rate, it is answered 408 and its job dropped."""

    async def test() -> None:
        async with serving(tmp_path, limits=Limits(stalled_stream=2.0)) as s:
            reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
            writer.write(
                TRANSCRIPTIONS + b"Content-Type: multipart/form-data; boundary=xx\r\n"
                b"Content-Length: 100000\r\n\r\n" + file_part(b'; filename="a.wav"') + b"RIFF"
            )
            answer = asyncio.ensure_future(reader.read(65536))
            for _ in range(1200):  # two minutes at most: the old front never answered
                if answer.done():
                    break
                with contextlib.suppress(ConnectionError):
                    writer.write(b"\0" * 8)  # more than a boundary: no read waits
                    await writer.drain()
                await asyncio.sleep(0.1)
            assert answer.done(), "the trickled upload was never cut off"
            error = assert_openai_error(await answer + await reader.read(), 408, "timeout")
            assert "KiB/s" in error["message"]  # the whole upload's limit, not the stall
            writer.close()
            assert s.daemon.state.front_requests == 0
            assert s.daemon.scheduler.held_audio() == 0

    run(test)
