"""A blocking client for whisperd, standard library only (whisperctl must start fast).

It connects to the socket, starting the daemon when nothing answers (whisperd.autostart);
its errors and whisperctl's exit status for each are in whisperd.clienterrors.
"""

from __future__ import annotations

import collections
import itertools
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from whisperd.autostart import connect_socket
from whisperd.clienterrors import (
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_REQUEST_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ClientError,
    DaemonConfigError,
    DaemonTimeout,
    DaemonUnavailable,
    ProtocolMismatch,
    UntrustedDaemon,
    reply_error,
)
from whisperd.clientupload import AudioStream, SegmentCallback, check_size, send_file, upload
from whisperd.protocol import (
    PROTOCOL_VERSION,
    ProtocolError,
    RequestId,
    recv_message,
    send_message,
)
from whisperd.runtime import UnsafeRuntime

# The errors are part of this module's API (whisperctl, whisperd-keys and tests use them).
__all__ = [
    "AudioStream",
    "Client",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_REQUEST_FAILED",
    "EXIT_TIMEOUT",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "ClientError",
    "DaemonConfigError",
    "DaemonTimeout",
    "DaemonUnavailable",
    "ProtocolMismatch",
    "UntrustedDaemon",
    "SegmentCallback",
]

if TYPE_CHECKING:
    from whisperd.livestream import LiveStream

CommitCallback = Callable[[dict[str, Any]], None]

# whisperctl sends this many files ahead of the result it waits for.
PIPELINE_FILES = 16


class Client:
    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.server_info: dict[str, Any] = {}
        # Replies to requests still in flight that arrived while we waited for another.
        self.held: dict[RequestId, collections.deque[dict[str, Any]]] = {}

    @classmethod
    def connect(
        cls,
        socket_path: str | None = None,
        timeout: float = 30.0,
        autostart: bool = True,
        connect_timeout: float = 10.0,
        config: str | None = None,
    ) -> Client:
        """``config``: the configuration file for a daemon started here (whisperd --config)."""
        from whisperd.config import default_socket_path

        try:
            path = str(socket_path or os.environ.get("WHISPERD_SOCKET") or "")
            if not path:
                path = str(default_socket_path())
            sock = connect_socket(path, connect_timeout, autostart, config)
        except UnsafeRuntime as exc:
            raise UntrustedDaemon("untrusted", str(exc)) from None
        except OSError as exc:
            raise DaemonUnavailable("unavailable", f"cannot connect to {path}: {exc}") from None
        client = cls(sock, timeout)
        try:
            client.server_info = client.request(
                {"type": "hello", "version": PROTOCOL_VERSION, "client": "whisperd-client"}
            )
        except BaseException:
            client.close()
            raise
        return client

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # -- plumbing

    def next_id(self) -> int:
        return next(self.ids)

    def send(self, message: dict[str, Any]) -> None:
        try:
            send_message(self.sock, message)
        except OSError as exc:
            raise self.why_closed(exc) from None

    def why_closed(self, exc: OSError) -> ClientError:
        """The daemon's own reason for closing on us (say ``too_many_connections``, sent
        before our hello got there), when it left one to read; else the socket's error."""
        try:
            self.sock.settimeout(1.0)
            for _ in range(64):  # replies still unread may come before the reason
                message = recv_message(self.sock)
                if message.get("type") == "error" and message.get("id") is None:
                    return reply_error(message)
        except (OSError, ProtocolError):
            pass
        return DaemonUnavailable("unavailable", f"whisperd closed the connection: {exc}")

    def receive(self) -> dict[str, Any]:
        self.sock.settimeout(self.timeout)
        try:
            return recv_message(self.sock)
        except TimeoutError:
            raise DaemonTimeout(
                "timeout", f"whisperd did not answer within {self.timeout:.0f} s"
            ) from None
        except ProtocolError as exc:
            raise ProtocolMismatch(exc.code, exc.message) from None
        except OSError as exc:
            raise DaemonUnavailable(
                "unavailable", f"whisperd closed the connection: {exc}"
            ) from None

    def next_message(self, request_id: RequestId) -> dict[str, Any]:
        held = self.held.get(request_id)
        while not held:
            message = self.receive()
            other = message.get("id")
            if other == request_id:
                return message
            if other is None and message.get("type") == "error":
                raise reply_error(message)  # about the whole connection
            if other in self.held:
                self.held[other].append(message)  # pipelined: read when its turn comes
            # else: a late reply to a request we gave up on
        return held.popleft()

    def wait_reply(
        self, request_id: RequestId, on_segment: SegmentCallback | None = None
    ) -> dict[str, Any]:
        while True:
            message = self.next_message(request_id)
            kind = message.get("type")
            if kind == "segment":
                if on_segment is not None:
                    on_segment(message)
                continue
            if kind == "error":
                self.held.pop(request_id, None)
                raise reply_error(message)
            if kind == "result":
                self.held.pop(request_id, None)
            return message

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        message = {"id": self.next_id(), **message}
        self.send(message)
        return self.wait_reply(message["id"])

    # -- operations

    def ping(self) -> None:
        self.request({"type": "ping"})

    def status(self) -> dict[str, Any]:
        return self.request({"type": "status"})

    def load(self) -> dict[str, Any]:
        return self.request({"type": "load"})

    def unload(self) -> dict[str, Any]:
        """The ``unloaded`` reply: ``pending`` when the model goes after a running request."""
        return self.request({"type": "unload"})

    def start_stream(
        self,
        sample_rate: int = 16000,
        channels: int = 1,
        encoding: str = "s16le",
        options: dict[str, Any] | None = None,
    ) -> AudioStream:
        """Begin a PCM transcription; the daemon starts loading the model at once."""
        message = {
            "type": "transcribe",
            "format": "pcm",
            "encoding": encoding,
            "sample_rate": sample_rate,
            "channels": channels,
            "options": options or {},
        }
        return self._start(message)

    def start_live(
        self,
        on_commit: CommitCallback,
        sample_rate: int = 16000,
        channels: int = 1,
        encoding: str = "s16le",
        options: dict[str, Any] | None = None,
    ) -> LiveStream:
        """Begin a live dictation: ``on_commit`` gets each ``commit`` event, from a reader
        thread, while the audio is still being sent (whisperd/livestream.py)."""
        from whisperd.livestream import start_live

        return start_live(self, on_commit, sample_rate, channels, encoding, options)

    def start_file(self, options: dict[str, Any] | None = None) -> AudioStream:
        return self._start({"type": "transcribe", "format": "file", "options": options or {}})

    def _start(self, message: dict[str, Any]) -> AudioStream:
        request_id = self.next_id()
        self.send({"id": request_id, **message})
        self.wait_reply(request_id)  # "accepted", or an error for a bad field
        return AudioStream(self, request_id)

    def transcribe_file(
        self,
        path: str | os.PathLike[str],
        options: dict[str, Any] | None = None,
        on_segment: SegmentCallback | None = None,
    ) -> dict[str, Any]:
        with open(path, "rb") as handle:
            check_size(self, handle)
            stream = self.start_file(options)
            upload(self, stream, handle)
            return stream.finish(on_segment)

    def transcribe_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        options: dict[str, Any] | None = None,
        on_segment: Callable[[int], SegmentCallback | None] | None = None,
        ahead: int = PIPELINE_FILES,
    ) -> Iterator[dict[str, Any] | ClientError | OSError]:
        """Transcribe several files, in order, sending up to ``ahead`` of them before
        reading the first result: the daemon then sees them queued together and packs
        short ones into shared windows (docs/protocol.md), and no upload waits on a
        transcription. Yields each file's result, or the error that file got."""
        sent: collections.deque[tuple[int, AudioStream | ClientError | OSError]] = (
            collections.deque()
        )
        index = 0
        done = 0
        while done < len(paths):
            while index < len(paths) and len(sent) < ahead:
                sent.append((index, send_file(self, paths[index], options)))
                index += 1
            position, pending = sent.popleft()
            done += 1
            if not isinstance(pending, AudioStream):
                yield pending
                continue
            callback = on_segment(position) if on_segment is not None else None
            try:
                result = self.wait_reply(pending.id, callback)
            except ClientError as exc:
                yield exc
                continue
            result["text"] = str(result.get("text", "")).strip()
            yield result

    # -- uploads (whisperd/clientupload.py): stop as soon as the daemon said no, never
    # send past its limit

    def max_audio_bytes(self) -> int | None:
        limits = self.server_info.get("limits")
        value = limits.get("max_audio_bytes") if isinstance(limits, dict) else None
        return value if isinstance(value, int) and value > 0 else None
