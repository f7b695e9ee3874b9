"""A blocking client for whisperd, standard library only (whisperctl must start fast).

It connects to the socket, starting the daemon when nothing answers: through the systemd
user manager when one is there, else by spawning ``whisperd`` in the background.
"""

from __future__ import annotations

import collections
import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from whisperd.protocol import (
    MAX_AUDIO_FRAME,
    PROTOCOL_VERSION,
    ProtocolError,
    RequestId,
    recv_message,
    send_audio,
    send_message,
)
from whisperd.runtime import UnsafeRuntime, check_socket_dir, check_socket_file, verify_daemon

if TYPE_CHECKING:
    from whisperd.livestream import LiveStream

SegmentCallback = Callable[[dict[str, Any]], None]
CommitCallback = Callable[[dict[str, Any]], None]

# Exit codes of whisperctl, documented in docs/protocol.md and the README.
# whisperctl sends this many files ahead of the result it waits for.
PIPELINE_FILES = 16

EXIT_OK = 0
EXIT_REQUEST_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_TIMEOUT = 4
EXIT_PROTOCOL = 5


class ClientError(Exception):
    exit_code = EXIT_REQUEST_FAILED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DaemonUnavailable(ClientError):
    exit_code = EXIT_UNAVAILABLE


class DaemonTimeout(ClientError):
    exit_code = EXIT_TIMEOUT


class ProtocolMismatch(ClientError):
    exit_code = EXIT_PROTOCOL


class UntrustedDaemon(DaemonUnavailable):
    """The socket, its directory or the process behind it is not our own (whisperd.runtime)."""


def _try_connect(path: str, timeout: float) -> socket.socket | None:
    """A connection to our own daemon on ``path``; None when nothing listens there.

    Raises UnsafeRuntime, before a byte is sent, when the socket or the process listening
    on it belongs to someone else.
    """
    if not check_socket_file(Path(path)):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        verify_daemon(sock, path)
        return sock
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise


def _systemd_can_activate(path: str) -> bool:
    """Start whisperd.socket through the user manager, if there is one and it owns ``path``."""
    from whisperd.config import default_socket_path

    if path != str(default_socket_path()) or not shutil.which("systemctl"):
        return False
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.exists(os.path.join(runtime, "systemd", "private")):
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "start", "whisperd.socket"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and os.path.exists(path)


def spawn_daemon(path: str) -> None:
    """Start whisperd in the background (no systemd): same idle exit, logs to a file."""
    log_path = Path(path).with_name("whisperd.log")
    with open(log_path, "ab") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "whisperd.server", "--socket", path],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # survives our exit and our terminal's signals
            close_fds=True,
        )


def connect_socket(path: str, connect_timeout: float, autostart: bool) -> socket.socket:
    check_socket_dir(Path(path))
    sock = _try_connect(path, connect_timeout)
    if sock is not None:
        return sock
    if not autostart:
        raise DaemonUnavailable(
            "unavailable", f"whisperd is not running (nothing listens on {path})"
        )
    if not _systemd_can_activate(path):
        spawn_daemon(path)
    deadline = time.monotonic() + connect_timeout
    while time.monotonic() < deadline:
        sock = _try_connect(path, connect_timeout)
        if sock is not None:
            return sock
        time.sleep(0.02)
    raise DaemonUnavailable(
        "unavailable",
        f"whisperd did not start within {connect_timeout:.0f} s (socket {path}); "
        f"see {Path(path).with_name('whisperd.log')} or `journalctl --user -u whisperd`",
    )


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
    ) -> Client:
        from whisperd.config import default_socket_path

        try:
            path = str(socket_path or os.environ.get("WHISPERD_SOCKET") or "")
            if not path:
                path = str(default_socket_path())
            sock = connect_socket(path, connect_timeout, autostart)
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
            raise DaemonUnavailable(
                "unavailable", f"whisperd closed the connection: {exc}"
            ) from None

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
                code = str(message.get("code"))
                text = str(message.get("message"))
                if code == "unsupported_version":
                    raise ProtocolMismatch(code, text)
                raise ClientError(code, text)
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

    def unload(self) -> None:
        self.request({"type": "unload"})

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
            stream = self.start_file(options)
            for chunk in _chunks(handle):
                stream.send(chunk)
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
                sent.append((index, self._send_file(paths[index], options)))
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

    def _send_file(
        self, path: str | os.PathLike[str], options: dict[str, Any] | None
    ) -> AudioStream | ClientError | OSError:
        try:
            handle = open(path, "rb")
        except OSError as exc:
            return exc
        with handle:
            try:
                stream = self.start_file(options)
            except ClientError as exc:
                return exc
            self.held[stream.id] = collections.deque()
            try:
                for chunk in _chunks(handle):
                    stream.send(chunk)
            except OSError as exc:  # unreadable midway: drop the request
                self.held.pop(stream.id, None)
                stream.cancel()
                return exc
            self.send({"type": "end", "id": stream.id})
        return stream


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(MAX_AUDIO_FRAME):
        yield chunk


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
                raise DaemonUnavailable(
                    "unavailable", f"whisperd closed the connection: {exc}"
                ) from None

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
