"""A Wyoming remote (wyoming-faster-whisper, Home Assistant's speech servers).

``transcribe`` → ``audio-start`` → ``audio-chunk``… → ``audio-stop``, answered by one
``transcript``. A dictation's chunks are sent while the user still speaks (``feed``), so
at release only ``audio-stop`` and the remote's decoding are left; a file's decoded audio
is sent at once. Connections and writes use the ``wyoming`` package's ``AsyncTcpClient``;
reading does not use its ``async_read_event``, which trusts the lengths the peer announces
(any ``payload_length`` is read whole): ``BoundedClient`` reads an event only when its
header line fits 64 KiB and everything announced fits what is left of ``MAX_ANSWER_BYTES``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from whisperd.engine.remote.common import MAX_ANSWER_BYTES, RemoteUnavailable, transcription
from whisperd.engine.remote.target import Target
from whisperd.engine.samples import SAMPLE_RATE

if TYPE_CHECKING:
    from whisperd.engine import Transcription

log = logging.getLogger("whisperd.remote")

CHUNK_BYTES = 2 * SAMPLE_RATE  # a file's audio goes out in 1 s chunks
POLL = 0.5  # how often a stream waiting for audio checks whether its job was cancelled


class BoundedClient(AsyncTcpClient):
    """AsyncTcpClient whose reads are bounded (see the module's docstring)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, connect_timeout=timeout)
        self.budget = MAX_ANSWER_BYTES

    async def read_bounded(self) -> Event | None:
        reader = self._reader
        assert reader is not None
        try:
            line = await reader.readline()  # ValueError past the stream's 64 KiB limit
        except ValueError:
            raise RemoteUnavailable("too_large", "sent an event header over 64 KiB") from None
        if not line:
            return None
        self.budget -= len(line)
        try:
            header = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise RemoteUnavailable(
                "garbage", "sent something that is not a Wyoming event"
            ) from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise RemoteUnavailable("garbage", "sent an event without a type")
        data = header.get("data") or {}
        extra = await self._announced(reader, header.get("data_length"))
        if extra:
            try:
                data = {**data, **json.loads(extra)} if isinstance(data, dict) else None
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, TypeError):
                data = None
        if not isinstance(data, dict):
            raise RemoteUnavailable("garbage", "sent an event whose data is not an object")
        payload = await self._announced(reader, header.get("payload_length"))
        return Event(type=header["type"], data=data, payload=payload or None)

    async def _announced(self, reader: asyncio.StreamReader, length: Any) -> bytes:
        if length is None or length == 0:
            return b""
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise RemoteUnavailable("garbage", "announced a length that is not a count")
        if length > self.budget:
            raise RemoteUnavailable("too_large", f"answered more than {MAX_ANSWER_BYTES} bytes")
        self.budget -= length
        return await reader.readexactly(length)


class WyomingStream:
    """One transcription on a Wyoming remote; audio may be fed while it is recorded.

    The exchange runs in a task from the start: connecting, ``transcribe`` and
    ``audio-start`` happen while the first audio arrives. A failure during the hold is
    kept and raised by ``finish`` (the caller then falls back on the audio it kept).
    """

    def __init__(
        self, remote: WyomingRemote, options: dict[str, Any], cancelled: Callable[[], bool]
    ) -> None:
        self.remote = remote
        self.options = options
        self.cancelled = cancelled
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent = 0  # bytes of audio fed
        self.task = asyncio.ensure_future(self._exchange())
        self.task.add_done_callback(_consume)

    def feed(self, pcm: bytes) -> None:
        """16 kHz mono s16le audio to send (queued: the event loop is never blocked)."""
        if pcm and not self.task.done():
            self.sent += len(pcm)
            self.queue.put_nowait(pcm)

    async def finish(self, duration: float) -> Transcription:
        """All audio is fed: the remote's transcription, within ``remote_timeout``."""
        self.queue.put_nowait(None)
        try:
            text, language = await asyncio.wait_for(
                asyncio.shield(self.task), timeout=self.remote.timeout
            )
        except TimeoutError:
            self.task.cancel()
            raise RemoteUnavailable(
                "timeout", f"no answer within daemon.remote_timeout = {self.remote.timeout:g} s"
            ) from None
        return transcription(text, None, language, duration, "remote")

    def abort(self) -> None:
        self.task.cancel()

    async def _exchange(self) -> tuple[str, str]:
        remote = self.remote
        client = BoundedClient(remote.target.host, remote.target.port, remote.timeout)
        try:
            await client.connect()
        except TimeoutError:
            raise RemoteUnavailable("timeout", "connecting timed out") from None
        except OSError as exc:
            raise RemoteUnavailable("refused", f"cannot connect: {exc.strerror or exc}") from None
        try:
            return await self._talk(client)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise RemoteUnavailable("dropped", f"the connection broke: {exc}") from None
        finally:
            try:
                await client.disconnect()
            except OSError:
                pass

    async def _talk(self, client: BoundedClient) -> tuple[str, str]:
        language = self.options.get("language") or None
        terms = list(self.options.get("vocabulary") or []) or None
        await client.write_event(Transcribe(language=language, transcript_terms=terms).event())
        await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
        while (pcm := await self._next_audio()) is not None:
            chunk = AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=pcm)
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_bounded()
            if event is None:
                raise RemoteUnavailable("dropped", "closed the connection before the transcript")
            if Transcript.is_type(event.type):
                text = event.data.get("text")
                if not isinstance(text, str):
                    raise RemoteUnavailable("garbage", "sent a transcript without text")
                found = event.data.get("language")
                return text, found if isinstance(found, str) and len(found) <= 32 else ""
            # transcript-start/-chunk/-stop and anything else: the final transcript follows

    async def _next_audio(self) -> bytes | None:
        while True:
            try:
                return await asyncio.wait_for(self.queue.get(), timeout=POLL)
            except TimeoutError:
                if self.cancelled():
                    raise asyncio.CancelledError from None


def _consume(task: asyncio.Future[Any]) -> None:
    """A failed stream nobody finishes (its job was cancelled) is not an unhandled error."""
    if not task.cancelled():
        task.exception()


class WyomingRemote:
    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout

    def stream(self, options: dict[str, Any], cancelled: Callable[[], bool]) -> WyomingStream:
        return WyomingStream(self, options, cancelled)

    async def send_all(self, pcm: bytes, options: dict[str, Any]) -> Transcription:
        """A whole decoded file: streamed out in 1 s chunks, then its transcript."""
        stream = self.stream(options, lambda: False)
        for start in range(0, len(pcm), CHUNK_BYTES):
            stream.feed(pcm[start : start + CHUNK_BYTES])
        return await stream.finish(len(pcm) / 2 / SAMPLE_RATE)
