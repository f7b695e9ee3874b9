"""The client side of a live dictation (docs/protocol.md, "Live dictation").

A reader thread takes the daemon's replies off the socket while the caller keeps sending
audio, and hands each ``commit`` event over at once. Standard library only: whisperctl
uses it.
"""

from __future__ import annotations

import select
import threading
import time
from typing import Any

from whisperd.client import (
    AudioStream,
    Client,
    ClientError,
    CommitCallback,
    DaemonTimeout,
    SegmentCallback,
)


def start_live(
    client: Client,
    on_commit: CommitCallback,
    sample_rate: int,
    channels: int,
    encoding: str,
    options: dict[str, Any] | None,
) -> LiveStream:
    request_id = client.next_id()
    client.send(
        {
            "id": request_id,
            "type": "transcribe",
            "format": "pcm",
            "encoding": encoding,
            "sample_rate": sample_rate,
            "channels": channels,
            "options": {**(options or {}), "live": True},
        }
    )
    client.wait_reply(request_id)  # "accepted", or an error for a bad field
    return LiveStream(client, request_id, on_commit)


class LiveStream(AudioStream):
    """A live dictation: a reader thread hands ``commit`` events to ``on_commit`` while
    the audio is sent; ``finish`` sends ``end`` and returns the result after the last
    commit event has been handed over. ``cancel`` may be called from any thread."""

    POLL_SECONDS = 0.05

    def __init__(self, client: Client, request_id: int, on_commit: CommitCallback) -> None:
        super().__init__(client, request_id)
        self._on_commit = on_commit
        self._outcome: dict[str, Any] | ClientError | None = None
        self._ended_at: float | None = None  # the answer's timeout counts from `end`
        self._stop = threading.Event()
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read, name="whisperd-live", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            self._outcome = self._read_until_result()
        except ClientError as exc:
            self._outcome = exc
        except (OSError, ValueError) as exc:
            # The socket was closed under us (a cancel closes the client while this thread
            # is between select() and its read): end the stream, do not die.
            code = "cancelled" if self._stop.is_set() else "unavailable"
            self._outcome = ClientError(code, f"the connection to whisperd closed: {exc}")
        finally:
            self._done.set()

    def _read_until_result(self) -> dict[str, Any] | ClientError:
        while not self._stop.is_set():
            ended = self._ended_at
            if ended is not None and time.monotonic() - ended > self.client.timeout:
                return DaemonTimeout(
                    "timeout", f"whisperd did not answer within {self.client.timeout:.0f} s"
                )
            if not select.select([self.client.sock], [], [], self.POLL_SECONDS)[0]:
                continue
            message = self.client.receive()  # a whole frame follows its first byte
            if message.get("id") != self.id:
                continue
            kind = message.get("type")
            if kind == "commit":
                self._on_commit(message)
            elif kind == "error":
                return ClientError(str(message.get("code")), str(message.get("message")))
            elif kind == "result":
                message["text"] = str(message.get("text", "")).strip()
                return message
        return ClientError("cancelled", "the dictation was cancelled")

    def finish(self, on_segment: SegmentCallback | None = None) -> dict[str, Any]:
        if not self._done.is_set():
            self._ended_at = time.monotonic()
            self._send_message({"type": "end", "id": self.id})
        self._done.wait()
        outcome = self._outcome
        if isinstance(outcome, ClientError):
            raise outcome
        assert outcome is not None
        return outcome

    def cancel(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if not self._done.is_set():
            try:
                self._send_message({"type": "cancel", "id": self.id})
            except ClientError:
                pass  # the connection is gone: the daemon drops the request anyway
        self._reader.join(1.0)
