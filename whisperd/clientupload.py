"""Sending audio to whisperd: ``AudioStream`` (one transcription's audio, as it becomes
available) and the file uploads of ``Client.transcribe_file``/``transcribe_files``, which
stop as soon as the daemon said no and never send past its limit. Standard library only."""

from __future__ import annotations

import collections
import os
import select
import stat
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from whisperd.clienterrors import EXIT_REQUEST_FAILED, ClientError, reply_error, too_large
from whisperd.protocol import MAX_AUDIO_FRAME, RequestId, send_audio

if TYPE_CHECKING:
    from whisperd.client import Client

SegmentCallback = Callable[[dict[str, Any]], None]


class AudioStream:
    """Audio of one transcription, sent as it becomes available."""

    def __init__(self, client: Client, request_id: int) -> None:
        self.client = client
        self.id = request_id
        # Writes may come from two threads (audio from the recording, a cancel from the
        # key loop); whole frames must not interleave.
        self._write_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), MAX_AUDIO_FRAME):
            part = bytes(view[start : start + MAX_AUDIO_FRAME])
            try:
                with self._write_lock:
                    send_audio(self.client.sock, self.id, part)
            except OSError as exc:
                raise self.client.why_closed(exc) from None

    def _send_message(self, message: dict[str, Any]) -> None:
        with self._write_lock:
            self.client.send(message)

    def finish(self, on_segment: SegmentCallback | None = None) -> dict[str, Any]:
        self._send_message({"type": "end", "id": self.id})
        result = self.client.wait_reply(self.id, on_segment)
        result["text"] = str(result.get("text", "")).strip()
        return result

    def cancel(self) -> None:
        self._send_message({"type": "cancel", "id": self.id})


def send_file(
    client: Client, path: str | os.PathLike[str], options: dict[str, Any] | None
) -> AudioStream | ClientError | OSError:
    """One file of ``transcribe_files``, uploaded and ended: its stream, or the error this
    file got (the next files go on); an error about the connection is raised."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        return exc
    with handle:
        try:
            check_size(client, handle)
            stream = client.start_file(options)
        except ClientError as exc:
            return exc
        client.held[stream.id] = collections.deque()
        try:
            upload(client, stream, handle)
        except OSError as exc:  # unreadable midway: drop the request
            client.held.pop(stream.id, None)
            stream.cancel()
            return exc
        except ClientError as exc:
            client.held.pop(stream.id, None)
            if exc.exit_code != EXIT_REQUEST_FAILED:
                raise
            return exc  # this file's error; the next files go on
        client.send({"type": "end", "id": stream.id})
    return stream


def check_size(client: Client, handle: BinaryIO) -> None:
    """Refuse a regular file over the daemon's limit before a request is made."""
    limit = client.max_audio_bytes()
    try:
        info = os.fstat(handle.fileno())
    except (OSError, ValueError):
        return
    if limit is not None and stat.S_ISREG(info.st_mode) and info.st_size > limit:
        raise too_large(limit)


def upload(client: Client, stream: AudioStream, handle: BinaryIO) -> None:
    """Send a file's bytes; stops at the daemon's limit (a pipe or a device may never
    end) and at an error the daemon sent meanwhile (it drops the rest of the audio)."""
    limit = client.max_audio_bytes()
    sent = 0
    for chunk in chunks(handle):
        sent += len(chunk)
        if limit is not None and sent > limit:
            stream.cancel()
            raise too_large(limit)
        stream.send(chunk)
        read_early_replies(client, stream.id)


def read_early_replies(client: Client, request_id: RequestId) -> None:
    """Take what the daemon has sent already, without waiting: replies to earlier
    requests are held for later; an error for this one ends its upload."""
    while select.select([client.sock], [], [], 0)[0]:
        message = client.receive()
        other = message.get("id")
        if message.get("type") == "error" and other in (request_id, None):
            raise reply_error(message)
        if isinstance(other, (int, str)) and (other == request_id or other in client.held):
            client.held.setdefault(other, collections.deque()).append(message)


def chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(MAX_AUDIO_FRAME):
        yield chunk
