"""whisperd: the daemon. Socket activation, connections, the work queue and the idle exit.

Framing lives in protocol.py, the model in engine.py; this module only moves messages
between clients and one worker thread that owns the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
import struct
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whisperd import __version__, privacy
from whisperd.config import ConfigError, DaemonConfig, load_section, read_toml
from whisperd.protocol import (
    MAX_AUDIO_FRAME,
    MAX_JSON_FRAME,
    PROTOCOL_VERSION,
    Audio,
    Cancel,
    End,
    ErrorCode,
    Hello,
    Load,
    ProtocolError,
    RequestId,
    Simple,
    Transcribe,
    check_length,
    decode_message,
    encode_message,
    error_message,
    parse_request,
    read_frame,
)
from whisperd.runtime import UnsafeRuntime, ensure_private_dir

if TYPE_CHECKING:
    from whisperd.audio import PcmStreamDecoder, Samples
    from whisperd.engine import Transcription

log = logging.getLogger("whisperd")


def notify(state: str) -> None:
    """Tell the service manager about our state; a no-op without NOTIFY_SOCKET."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    from systemd import daemon

    daemon.notify(state)


# --- the listening socket -----------------------------------------------------------------


class SocketInUse(Exception):
    pass


@dataclass
class Listener:
    sock: socket.socket
    path: Path | None  # set when we bound it ourselves, so we remove it on exit
    activated: bool
    lock_fd: int | None = None


def activated_socket() -> socket.socket | None:
    """The listening socket passed by systemd (LISTEN_FDS), if any."""
    if not os.environ.get("LISTEN_FDS"):
        return None
    from systemd import daemon

    fds = daemon.listen_fds()
    if not fds:
        return None
    if len(fds) > 1:
        log.warning("%d sockets passed by the service manager; using the first", len(fds))
    return socket.socket(fileno=fds[0])


def _live_daemon_answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        # A socket nobody listens on refuses; anything else (a full backlog) is a live one.
        return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()


def bind_socket(path: Path) -> Listener:
    """Bind our own socket (no socket activation): 0600, never over a live daemon."""
    ensure_private_dir(path.parent)  # ours, 0700, not a symlink (whisperd/runtime.py)
    # The lock serialises two daemons started at once (two whisperctl autostarting).
    lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise SocketInUse(f"another whisperd is starting or running on {path}") from None
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            os.close(lock_fd)
            raise SocketInUse(f"{path} exists and is not a socket; remove it")
        if _live_daemon_answers(path):
            os.close(lock_fd)
            raise SocketInUse(f"a live whisperd already answers on {path}")
        log.info("removing stale socket %s", path)
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    return Listener(sock, path, activated=False, lock_fd=lock_fd)


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


# --- requests -----------------------------------------------------------------------------


@dataclass
class Job:
    """One transcription: audio collected from the client, then run on the worker."""

    request: Transcribe
    conn: Connection
    chunks: list[bytes] = field(default_factory=list)  # file bytes, decoded at the end
    stream: PcmStreamDecoder | None = None  # PCM, decoded as it arrives
    size: int = 0
    cancelled: bool = False
    received_at: float = 0.0
    # Streamed dictation: audio before `committed` (samples) is already transcribed into
    # `segments` by windows run while the user was still speaking.
    committed: int = 0
    segments: list[dict[str, Any]] = field(default_factory=list)
    window: asyncio.Future[None] | None = None
    window_seconds: float = 0.0
    # A draft: the audio from `committed` to a pause, transcribed while the user was silent.
    # If nothing is said after it before the stream ends, it is the result.
    draft: Draft | None = None
    drafting: asyncio.Future[None] | None = None
    draft_seconds: float = 0.0
    draft_used: bool = False
    # A file transcribed in shared windows with the file queued before it (packing).
    packed: Transcription | None = None
    packed_with: int = 0


@dataclass
class Draft:
    start: int  # samples, the job's `committed` when the draft was made
    end: int
    result: Transcription


class Connection:
    def __init__(
        self, daemon: Daemon, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.daemon = daemon
        self.reader = reader
        self.writer = writer
        self.greeted = False
        self.receiving: Job | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_message(message))

    async def serve(self) -> None:
        try:
            while True:
                payload = await read_frame(self.reader, MAX_JSON_FRAME, "message")
                if payload is None:
                    break
                try:
                    message = decode_message(payload)
                    # Audio is read before anything else is checked, so that whatever the
                    # reply, the byte stream stays in step.
                    audio = await self.announced_audio(message)
                    await self.dispatch(message, audio)
                except ProtocolError as exc:
                    if exc.fatal:
                        raise
                    log.info("request error (%s): %s", exc.code, exc.message)
                    self.send(exc.to_message())
                await self.writer.drain()
        except ProtocolError as exc:
            log.warning("closing a connection after a protocol error (%s): %s", exc.code, exc)
            self.send(exc.to_message())
        except (ConnectionError, BrokenPipeError):
            log.info("client went away")
        finally:
            self.abandon()
            await self.wait_tasks()
            await self.close()

    async def wait_tasks(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass

    def abandon(self) -> None:
        """The client is gone: drop what it was sending and what it queued."""
        if self.receiving is not None:
            self.receiving.cancelled = True
            self.receiving = None
        for job in self.daemon.jobs_of(self):
            job.cancelled = True

    async def announced_audio(self, message: dict[str, Any]) -> bytes | None:
        """The binary frame an ``audio`` message announces; any doubt about it is fatal."""
        if message.get("type") != "audio":
            return None
        size = message.get("size")
        rid = message.get("id")
        rid = rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                "an audio message needs a non-negative integer 'size'; without it the "
                "stream cannot be followed",
                rid,
            )
        check_length(size, MAX_AUDIO_FRAME, "audio")
        payload = await read_frame(self.reader, MAX_AUDIO_FRAME, "audio")
        if payload is None:
            raise ProtocolError(ErrorCode.BAD_FRAME, "connection closed before announced audio")
        if len(payload) != size:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                f"audio frame of {len(payload)} bytes, but {size} were announced",
            )
        return payload

    async def dispatch(self, message: dict[str, Any], audio: bytes | None = None) -> None:
        request = parse_request(message)
        if isinstance(request, Hello):
            self.hello(request)
            return
        if not self.greeted:
            raise ProtocolError(
                ErrorCode.HANDSHAKE_REQUIRED,
                "send {'type': 'hello', 'version': 1} before any other message",
                request.id,
            )
        if isinstance(request, Audio):
            assert audio is not None
            self.audio(request, audio)
        elif isinstance(request, Simple):
            await self.simple(request)
        elif isinstance(request, Load):
            self.spawn(self.daemon.load(self, request.id))
        elif isinstance(request, Transcribe):
            self.transcribe(request)
        elif isinstance(request, End):
            self.end(request)
        elif isinstance(request, Cancel):
            self.cancel(request)

    def spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def hello(self, request: Hello) -> None:
        if request.version != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol version {request.version} is not supported; this whisperd speaks "
                f"version {PROTOCOL_VERSION}",
                request.id,
            )
        self.greeted = True
        self.send(
            {
                "type": "hello",
                "id": request.id,
                "version": PROTOCOL_VERSION,
                "server": f"whisperd/{__version__}",
                "limits": self.daemon.limits(),
            }
        )

    async def simple(self, request: Simple) -> None:
        if request.type == "ping":
            self.send({"type": "pong", "id": request.id})
        elif request.type == "status":
            self.send({"type": "status", "id": request.id, **self.daemon.status()})
        else:
            self.spawn(self.daemon.unload(self, request.id))

    def transcribe(self, request: Transcribe) -> None:
        if self.receiving is not None:
            raise ProtocolError(
                ErrorCode.BUSY,
                f"request {self.receiving.request.id!r} is still receiving audio on this "
                "connection; send 'end' first or use another connection",
                request.id,
            )
        from whisperd.audio import PcmStreamDecoder

        self.receiving = Job(request, self)
        if request.pcm is not None:
            self.receiving.stream = PcmStreamDecoder(request.pcm)
        self.send({"type": "accepted", "id": request.id})
        # Start loading while the audio is still arriving: dictation streams as the user speaks.
        self.daemon.warm_up()

    def audio(self, request: Audio, payload: bytes) -> None:
        job = self.receiving_job(request.id)
        limit = self.daemon.config.max_audio_bytes
        if job.size + len(payload) > limit:
            self.receiving = None
            job.cancelled = True  # stops a window running on what it had sent
            raise ProtocolError(
                ErrorCode.AUDIO_TOO_LARGE,
                f"audio exceeds the limit of {limit} bytes per request (daemon.max_audio_bytes)",
                request.id,
            )
        job.size += len(payload)
        if job.stream is None:
            job.chunks.append(payload)
            return
        job.stream.feed(payload)
        if job.stream.length > self.daemon.config.max_audio_seconds * 16000:
            self.receiving = None
            job.cancelled = True
            raise ProtocolError(
                ErrorCode.AUDIO_TOO_LARGE,
                "the stream exceeds daemon.max_audio_seconds",
                request.id,
            )
        self.daemon.maybe_start_window(job)
        self.daemon.maybe_start_draft(job)

    def receiving_job(self, request_id: RequestId) -> Job:
        if self.receiving is None or self.receiving.request.id != request_id:
            raise ProtocolError(
                ErrorCode.UNKNOWN_REQUEST,
                f"no transcription {request_id!r} is receiving audio on this connection",
                request_id,
            )
        return self.receiving

    def end(self, request: End) -> None:
        job = self.receiving_job(request.id)
        self.receiving = None
        job.received_at = time.monotonic()
        # Queued now, not when the task first runs: a cancel right behind `end` finds it.
        self.daemon.queued.append(job)
        self.spawn(self.daemon.run_job(job))

    def cancel(self, request: Cancel) -> None:
        if self.receiving is not None and self.receiving.request.id == request.id:
            self.receiving.cancelled = True
            self.receiving = None
        else:
            jobs = [j for j in self.daemon.jobs_of(self) if j.request.id == request.id]
            if not jobs:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_REQUEST, f"no request {request.id!r} to cancel", request.id
                )
            for job in jobs:
                job.cancelled = True
        self.send(error_message(ErrorCode.CANCELLED, "request cancelled", request.id))


# --- the daemon ---------------------------------------------------------------------------


# Streamed windows end at the quietest moment of their last WINDOW_SEARCH seconds.
WINDOW_SEARCH = 2.0
# Drafts are made of at most this much audio (one Whisper window).
DRAFT_MAX_SECONDS = 28.0
# The VAD needs this much audio to judge whether a word hides after a draft.
DRAFT_VAD_MIN = 0.1
# Files packed into shared windows: each at most this long, this many at once, and only
# files this small are decoded ahead of their turn to see whether they fit.
PACK_MAX_SECONDS = 20.0
PACK_MAX_FILES = 16
PACK_MAX_BYTES = 8 * 1024 * 1024


def packable(options: dict[str, Any]) -> bool:
    """Options the packed path honours exactly (word times need one clip per call)."""
    return not options.get("word_timestamps") and not options.get("fast_short_audio")


def merge_windows(
    earlier: list[dict[str, Any]], tail: Transcription, duration: float
) -> Transcription:
    """The result of a stream transcribed in windows: earlier segments, then the tail's."""
    from whisperd.engine import Transcription

    segments = earlier + tail.segments
    text = " ".join(s["text"] for s in segments if s["text"])
    return Transcription(text, segments, tail.language or "en", duration, None, tail.path)


def _consume_error(future: asyncio.Future[float]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("model load failed: %s", future.exception())


class Daemon:
    def __init__(self, config: DaemonConfig, listener: Listener) -> None:
        from whisperd.engine import Engine

        self.config = config
        self.listener = listener
        self.engine = Engine(config)
        # One worker thread: one model, requests in arrival order, the event loop stays free.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisperd-engine")
        self.connections: set[Connection] = set()
        self.queued: list[Job] = []
        self.busy = 0  # jobs and loads submitted to the worker and not finished
        self.loading: asyncio.Future[float] | None = None
        self.requests_served = 0
        self.started = time.monotonic()
        self.idle_since = time.monotonic()
        self.idle_handle: asyncio.TimerHandle | None = None
        self.stopping = False
        self.done: asyncio.Future[int] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # Accepted sockets whose Connection does not exist yet; they count as open.
        self._pending: set[object] = set()
        self.last_activity = time.monotonic()

    # -- bookkeeping

    def limits(self) -> dict[str, int]:
        return {
            "max_message": MAX_JSON_FRAME,
            "max_audio_frame": MAX_AUDIO_FRAME,
            "max_audio_bytes": self.config.max_audio_bytes,
        }

    def jobs_of(self, conn: Connection) -> list[Job]:
        return [job for job in self.queued if job.conn is conn]

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started, 3),
            "model_loaded": self.engine.loaded,
            "loading": self.loading is not None and not self.loading.done(),
            **self.engine.describe(),
            "load_seconds": self.engine.load_seconds,
            "configured_model": self.config.model,
            "idle_timeout": self.config.idle_timeout,
            # The idle timer runs only while no connection is open, so from the caller's side
            # the daemon exits this long after the last client leaves, unless work remains.
            "idle_exit_in": None if self.busy or self.queued else self.config.idle_timeout,
            "busy": bool(self.busy),
            "connections": len(self.connections),
            "queue_length": len(self.queued),
            "requests_served": self.requests_served,
            "socket_activated": self.listener.activated,
        }

    def set_status(self, text: str) -> None:
        notify(f"STATUS={text}")

    # -- the worker

    async def on_worker(self, function: Any, *args: Any) -> Any:
        assert self.loop is not None
        self.busy += 1
        self.cancel_idle_timer()
        try:
            return await self.loop.run_in_executor(self.worker, function, *args)
        finally:
            self.busy -= 1
            self.maybe_arm_idle_timer()

    def warm_up(self) -> None:
        """Load the model in the background if it is not loaded or loading."""
        if self.engine.loaded or (self.loading is not None and not self.loading.done()):
            return
        self.loading = asyncio.ensure_future(self._load())
        self.loading.add_done_callback(_consume_error)  # errors surface per request

    async def _load(self) -> float:
        self.set_status("loading the model")
        try:
            seconds: float = await self.on_worker(self.engine.load)
        finally:
            self.set_status(self.idle_status())
        return seconds

    async def ensure_loaded(self) -> float:
        """Wait for the model; requests arriving during a load wait for that same load."""
        from whisperd.engine import ModelNotFound

        if self.engine.loaded:
            return 0.0
        self.warm_up()
        assert self.loading is not None
        started = time.monotonic()
        try:
            await asyncio.shield(self.loading)
        except ModelNotFound as exc:
            self.loading = None
            raise ProtocolError(ErrorCode.MODEL_UNAVAILABLE, str(exc)) from None
        return time.monotonic() - started

    async def load(self, conn: Connection, request_id: RequestId) -> None:
        try:
            waited = await self.ensure_loaded()
        except ProtocolError as exc:
            exc.request_id = request_id
            conn.send(exc.to_message())
            return
        conn.send(
            {
                "type": "loaded",
                "id": request_id,
                "load_seconds": round(self.engine.load_seconds or 0.0, 3),
                "waited": round(waited, 3),
                **self.engine.describe(),
            }
        )

    async def unload(self, conn: Connection, request_id: RequestId) -> None:
        if self.loading is not None and not self.loading.done():
            await asyncio.wait([self.loading])
        was_loaded: bool = await self.on_worker(self.engine.unload)
        self.loading = None
        self.set_status(self.idle_status())
        conn.send({"type": "unloaded", "id": request_id, "was_loaded": was_loaded})

    def idle_status(self) -> str:
        model = self.engine.describe()
        if not self.engine.loaded:
            return "waiting for requests; model not loaded"
        return f"model {model['model']} ready on {model['device']}; {self.requests_served} served"

    async def run_job(self, job: Job) -> None:
        request_id = job.request.id
        try:
            message = await self._run_job(job)
        except ProtocolError as exc:
            exc.request_id = request_id
            log.info("request %r failed (%s): %s", request_id, exc.code, exc.message)
            message = exc.to_message()
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the daemon down
            log.exception("request %r failed unexpectedly", request_id)
            message = error_message(ErrorCode.INTERNAL, f"internal error: {exc}", request_id)
        finally:
            if job in self.queued:
                self.queued.remove(job)
        if not job.cancelled:
            job.conn.send(message)

    def segment_sender(self, job: Job) -> Callable[[dict[str, Any]], None]:
        """Forward segments from the worker thread to the client as they are decoded."""
        assert self.loop is not None
        loop = self.loop

        def send_segment(segment: dict[str, Any]) -> None:
            if not job.cancelled:
                msg = {"type": "segment", "id": job.request.id, **segment}
                loop.call_soon_threadsafe(job.conn.send, msg)

        return send_segment

    def window_options(self, job: Job) -> dict[str, Any]:
        """Options for the next piece of a stream: earlier text conditions the model."""
        options = dict(job.request.options)
        if job.stream is not None and options.get("without_timestamps"):
            # Dictation's request. With timestamps decoded, the unpadded window cost word
            # errors (docs/fastpath.md), so those streams take faster-whisper's own path
            # unless they ask for the fast path themselves.
            options.setdefault("fast_short_audio", self.config.fast_short_audio)
        if job.segments and "initial_prompt" not in options:
            options["initial_prompt"] = " ".join(s["text"] for s in job.segments)[-200:]
        return options

    def maybe_start_window(self, job: Job) -> None:
        """While a long dictation streams in, transcribe finished stretches of it.

        At release only the tail since the last window is left, so long dictation answers
        as fast as short dictation.
        """
        window = self.config.stream_window
        if window <= 0 or job.stream is None or job.window is not None or job.cancelled:
            return
        if job.received_at:
            return  # the stream has ended: the tail is transcribed in one piece now
        if job.stream.length - job.committed < (window + WINDOW_SEARCH) * 16000:
            return
        job.window = asyncio.ensure_future(self.run_window(job))

    async def run_window(self, job: Job) -> None:
        from whisperd.audio import quiet_cut

        assert job.stream is not None
        audio = job.stream.audio()
        cut = quiet_cut(audio, job.committed, audio.size, WINDOW_SEARCH)
        piece = audio[job.committed : cut]
        offset = job.committed / 16000
        options = self.window_options(job)
        sender = self.segment_sender(job)
        started = time.monotonic()
        try:
            result: Transcription = await self.on_worker(
                self.engine.transcribe, piece, options, sender, lambda: job.cancelled, offset
            )
        except Exception as exc:  # noqa: BLE001 - the tail path transcribes it all again
            log.warning("window of a stream failed; it is redone at the end: %s", exc)
            job.window = None
            return
        job.window_seconds += time.monotonic() - started
        job.segments.extend(result.segments)
        job.committed = cut
        job.window = None
        self.maybe_start_window(job)

    def maybe_start_draft(self, job: Job) -> None:
        """When the user pauses, transcribe what they said so far while they are silent.

        Most people stop speaking a moment before they release the key; if they say
        nothing more, the draft is the answer and the release costs no decoding at all.
        Drafts run only on an idle worker, so they never delay anyone else's request.
        """
        pause = self.config.draft_pause
        if pause <= 0 or job.stream is None or job.received_at or job.cancelled:
            return
        if job.window is not None or job.drafting is not None:
            return
        if self.busy or self.queued or not self.engine.loaded:
            return
        end = job.stream.length
        if end - job.committed > DRAFT_MAX_SECONDS * 16000:
            return
        spoken = job.stream.levels.speech_end(job.committed, self.config.min_rms)
        if spoken is None or end - spoken < pause * 16000:
            return
        draft = job.draft
        if draft is not None and draft.start == job.committed and spoken <= draft.end:
            return  # nothing was said since the last draft
        job.drafting = asyncio.ensure_future(self.run_draft(job, job.committed, end))

    async def run_draft(self, job: Job, start: int, end: int) -> None:
        assert job.stream is not None
        piece = job.stream.audio()[start:end]
        options = self.window_options(job)
        started = time.monotonic()
        try:
            # No segments are sent: a draft may be thrown away if the user speaks again.
            result: Transcription = await self.on_worker(
                self.engine.transcribe, piece, options, None, lambda: job.cancelled, start / 16000
            )
        except Exception as exc:  # noqa: BLE001 - the release transcribes it all anyway
            log.warning("a draft of a stream failed; the release decodes it: %s", exc)
        else:
            job.draft = Draft(start, end, result)
        finally:
            job.draft_seconds += time.monotonic() - started
            job.drafting = None
        self.maybe_start_window(job)

    def packable_peers(self, job: Job, audio: Samples) -> list[tuple[Job, Samples]]:
        """Short files queued behind this one on its connection, same options, decoded.

        Worker thread only. Whisper pays for a 30 s window whatever the audio's length, so
        short files are transcribed together in shared windows (whisperd/packing.py); a
        client that sends several files before reading results (whisperctl does) gets
        this. One-at-a-time requests never wait for company.
        """
        if not self.config.pack_files or job.stream is not None:
            return []
        if audio.size > PACK_MAX_SECONDS * 16000 or not packable(job.request.options):
            return []
        peers: list[tuple[Job, Samples]] = []
        for other in list(self.queued):  # a snapshot: the loop thread appends to it
            if len(peers) + 1 >= PACK_MAX_FILES:
                break
            if other is job or other.stream is not None or other.packed is not None:
                continue
            if other.cancelled or not other.received_at or other.size > PACK_MAX_BYTES:
                continue
            # One client's batch only (whisperctl's files): a request on its own
            # connection keeps faster-whisper's exact text.
            if other.conn is not job.conn or other.request.options != job.request.options:
                continue
            decoded = self.decode_peer(other)
            if decoded is not None:
                peers.append((other, decoded))
        return peers

    def decode_peer(self, other: Job) -> Samples | None:
        from whisperd.audio import BadAudio, decode_file

        try:
            decoded = decode_file(b"".join(other.chunks))
        except BadAudio:
            return None  # its own turn reports the error
        if decoded.size > PACK_MAX_SECONDS * 16000:
            return None
        return decoded

    def transcribe_packed(
        self, job: Job, audio: Samples, peers: list[tuple[Job, Samples]]
    ) -> Transcription:
        options = self.window_options(job)
        results = self.engine.transcribe_many([audio, *(a for _, a in peers)], options)
        for (other, _), result in zip(peers, results[1:], strict=True):
            other.packed, other.packed_with = result, len(results)
            other.chunks.clear()
        job.packed_with = len(results)
        return results[0]

    def usable_draft(self, job: Job, audio: Samples) -> Transcription | None:
        """The draft's result when nothing was said after it; None otherwise."""
        draft = job.draft
        if draft is None or job.stream is None or draft.start != job.committed:
            return None
        spoken = job.stream.levels.speech_end(job.committed, self.config.min_rms)
        if spoken is not None and spoken > draft.end:
            return None  # louder than a pause after the draft: the user spoke again
        rest = audio[draft.end :]
        if rest.size >= DRAFT_VAD_MIN * 16000 and self.engine.has_speech(rest):
            return None  # quiet, but the VAD hears a word
        return draft.result

    async def _run_job(self, job: Job) -> dict[str, Any]:
        from whisperd.audio import BadAudio, decode_file

        load_wait = await self.ensure_loaded()
        # A window or draft in flight: its text is part of the result (and the worker is
        # busy with it anyway).
        while job.window is not None or job.drafting is not None:
            await asyncio.shield(job.window or job.drafting)  # type: ignore[arg-type]
        send_segment = self.segment_sender(job)

        def decode() -> Samples:
            try:
                if job.stream is not None:
                    return job.stream.finish()
                data = b"".join(job.chunks)
                job.chunks.clear()
                return decode_file(data)
            except BadAudio as exc:
                raise ProtocolError(ErrorCode.BAD_AUDIO, str(exc)) from None

        def work() -> tuple[Transcription, dict[str, float]]:
            started = time.monotonic()
            if job.cancelled:
                raise ProtocolError(ErrorCode.CANCELLED, "request cancelled")
            if job.packed is not None:  # done with the file before it, in shared windows
                for segment in job.packed.segments:
                    send_segment(segment)
                return job.packed, {
                    "queue": started - job.received_at,
                    "audio_decode": 0.0,
                    "decode": 0.0,
                    "load": 0.0,
                }
            audio = decode()
            if audio.size / 16000 > self.config.max_audio_seconds:
                raise ProtocolError(
                    ErrorCode.AUDIO_TOO_LARGE,
                    f"audio of {audio.size / 16000:.0f} s exceeds daemon.max_audio_seconds",
                )
            decoded = time.monotonic()
            load = self.engine.load()  # a no-op unless unloaded meanwhile
            drafted = self.usable_draft(job, audio)
            if drafted is not None:
                job.draft_used = True
                for segment in drafted.segments:
                    send_segment(segment)
                result = drafted
            elif peers := self.packable_peers(job, audio):
                result = self.transcribe_packed(job, audio, peers)
                for segment in result.segments:
                    send_segment(segment)
            else:
                result = self.engine.transcribe(
                    audio[job.committed :],
                    self.window_options(job),
                    send_segment,
                    lambda: job.cancelled,
                    job.committed / 16000,
                )
            if job.segments:
                result = merge_windows(job.segments, result, audio.size / 16000)
            finished = time.monotonic()
            return result, {
                "queue": started - job.received_at,
                "audio_decode": decoded - started,
                "decode": finished - decoded - load,
                "load": load,
                "streamed_decode": job.window_seconds,
                "draft_decode": job.draft_seconds,
            }

        self.set_status("transcribing")
        try:
            result, timings = await self.on_worker(work)
        finally:
            self.set_status(self.idle_status())
        timings["load"] += load_wait
        timings["queue"] -= load_wait
        timings["total"] = time.monotonic() - job.received_at
        self.requests_served += 1
        log.info(
            "request %r: audio %.2f s, queue %.3f s, load %.3f s, decode %.3f s, total %.3f s, "
            "%d segment(s)%s, device %s",
            job.request.id,
            result.duration,
            timings["queue"],
            timings["load"],
            timings["decode"],
            timings["total"],
            len(result.segments),
            f", skipped: {result.skipped}" if result.skipped else "",
            self.engine.describe()["device"],
        )
        if self.config.debug_log_text:
            log.info("request %r text (debug_log_text): %s", job.request.id, result.text)
        return {
            "type": "result",
            "id": job.request.id,
            **result.to_message(),
            "draft": job.draft_used,
            "packed": job.packed_with,
            "timings": {k: round(max(v, 0.0), 4) for k, v in timings.items()},
            **self.engine.describe(),
        }

    # -- connections and the idle exit

    def on_readable(self) -> None:
        """Accept every pending connection, synchronously, so none is half-taken at exit."""
        while True:
            try:
                conn, _ = self.listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.error("accept failed: %s", exc)
                return
            self.start_connection(conn)

    def start_connection(self, conn: socket.socket) -> None:
        uid = peer_uid(conn)
        if uid != os.getuid():
            log.warning("refused a connection from uid %d: whisperd serves only its user", uid)
            message = error_message(ErrorCode.FORBIDDEN, "this whisperd serves another user")
            try:
                conn.setblocking(True)
                conn.settimeout(1.0)
                conn.sendall(encode_message(message))
            except OSError:
                pass
            conn.close()
            return
        self.cancel_idle_timer()
        # Counted before the handler runs, so the idle check can never miss it.
        placeholder = object()
        self._pending.add(placeholder)
        asyncio.ensure_future(self._serve(conn, placeholder))

    async def _serve(self, conn: socket.socket, placeholder: object) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=conn)
        connection = Connection(self, reader, writer)
        self.connections.add(connection)
        self._pending.discard(placeholder)
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)
            self.last_activity = time.monotonic()
            self.maybe_arm_idle_timer()

    def cancel_idle_timer(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None

    def maybe_arm_idle_timer(self) -> None:
        """Armed only when the last connection closes and no work is left."""
        if self.connections or self._pending or self.busy:
            return
        if self.stopping:
            # Past the deadline already (clients that arrived at it are now served).
            if self.done is not None and not self.done.done():
                self.exit_idle()
            return
        assert self.loop is not None
        self.idle_since = time.monotonic()
        self.cancel_idle_timer()
        self.idle_handle = self.loop.call_later(self.config.idle_timeout, self.on_idle_timer)

    def on_idle_timer(self) -> None:
        self.idle_handle = None
        # Re-checked when it fires: something may have started since it was armed.
        if self.connections or self._pending or self.busy or self.stopping:
            return
        remaining = self.idle_since + self.config.idle_timeout - time.monotonic()
        if remaining > 0.001:
            assert self.loop is not None
            self.idle_handle = self.loop.call_later(remaining, self.on_idle_timer)
            return
        self.stop_accepting()
        if self.listener.path is not None:
            # Our own socket: take the name away first, so a new client starts a new daemon
            # instead of queueing on a socket that is about to close.
            self.release_own_socket()
        # A client that connected in the last instant is served, not dropped.
        self.on_readable()
        if self.connections or self._pending:
            if self.listener.activated:
                log.info("a client arrived at the idle deadline; staying up")
                self.resume_accepting()
            else:
                log.info("a client arrived at the idle deadline; serving it, then exiting")
            return
        self.exit_idle()

    def exit_idle(self) -> None:
        log.info(
            "idle for %.0f s with no connection; exiting, which releases the model's memory",
            self.config.idle_timeout,
        )
        self.finish(0)

    def release_own_socket(self) -> None:
        if self.listener.path is None:
            return
        try:
            self.listener.path.unlink()
        except FileNotFoundError:
            pass
        self.listener.path = None
        if self.listener.lock_fd is not None:
            os.close(self.listener.lock_fd)
            self.listener.lock_fd = None

    def stop_accepting(self) -> None:
        assert self.loop is not None
        self.stopping = True
        self.loop.remove_reader(self.listener.sock.fileno())

    def resume_accepting(self) -> None:
        assert self.loop is not None
        self.stopping = False
        self.loop.add_reader(self.listener.sock.fileno(), self.on_readable)

    def finish(self, code: int) -> None:
        notify("STOPPING=1")
        notify("STATUS=exiting")
        if self.done is not None and not self.done.done():
            self.done.set_result(code)

    def on_signal(self, signum: int) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.stop_accepting()
        self.finish(0)

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.listener.sock.setblocking(False)
        self.loop.add_reader(self.listener.sock.fileno(), self.on_readable)
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.on_signal, signum)
        self.maybe_arm_idle_timer()
        where = "socket activation" if self.listener.activated else str(self.listener.path)
        log.info(
            "whisperd %s listening (%s); idle timeout %.0f s; model %s loads on first need",
            __version__,
            where,
            self.config.idle_timeout,
            self.config.model,
        )
        notify("READY=1")
        self.set_status(self.idle_status())
        code = await self.done
        await self.shutdown()
        return code

    async def shutdown(self) -> None:
        for connection in list(self.connections):
            connection.abandon()
            await connection.close()
        self.worker.shutdown(wait=False, cancel_futures=True)
        self.release_own_socket()
        self.listener.sock.close()


# --- entry point --------------------------------------------------------------------------


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    # Under systemd our stderr is the journal already; JournalHandler adds priorities.
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        try:
            from systemd.journal import JournalHandler

            root.addHandler(JournalHandler(SYSLOG_IDENTIFIER="whisperd"))
            return
        except ImportError:
            pass
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s whisperd %(levelname)s %(message)s"))
    root.addHandler(handler)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="whisperd", description="Local speech-to-text daemon (faster-whisper)."
    )
    parser.add_argument("--config", help="configuration file (default: %(default)s)", default=None)
    parser.add_argument("--socket", help="socket path when not socket-activated")
    parser.add_argument("--idle-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--model", help="model name (tiny.en, large-v3, ...) or path")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--compute-type")
    parser.add_argument("--cpu-threads", type=int)
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--allow-download", action="store_true", default=None)
    parser.add_argument(
        "--debug-log-text",
        action="store_true",
        default=None,
        help="log transcribed text (off by default: text is private)",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    parser.add_argument("--version", action="version", version=f"whisperd {__version__}")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> DaemonConfig:
    config = load_section(read_toml(args.config), "daemon", DaemonConfig)
    overrides = {
        "socket_path": args.socket,
        "idle_timeout": args.idle_timeout,
        "model": args.model,
        "device": args.device,
        "compute_type": args.compute_type,
        "cpu_threads": args.cpu_threads,
        "beam_size": args.beam_size,
        "allow_download": args.allow_download,
        "debug_log_text": args.debug_log_text,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    config.validate()
    return config


def stop_blas_spinning() -> None:
    """Make numpy's OpenBLAS threads sleep at once after a call, unless the user chose.

    Must run before numpy is imported. The daemon's numpy work (log-mel features,
    resampling) is small, but OpenBLAS threads keep spinning after each call and take the
    cores from the CTranslate2 encoder that runs right after: on 2 cores a short
    dictation's encode took twice as long (docs/benchmarks.md). The thread count stays
    as it is, so the features, and the text, are the same as in-process faster-whisper's
    (one thread changes the mel filterbank's summation order, and with it some words).
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # the minimum: 2^4 cycles


def main(argv: list[str] | None = None) -> int:
    stop_blas_spinning()
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = build_config(args)
    except ConfigError as exc:
        log.error("%s", exc)
        print(f"whisperd: {exc}", file=sys.stderr)
        return 2
    for late in privacy.keep_local(config.allow_download):  # before faster_whisper loads
        log.warning("%s was imported before its telemetry was switched off", late)
    from whisperd.config import default_socket_path

    try:
        sock = activated_socket()
        if sock is not None:
            listener = Listener(sock, None, activated=True)
        else:
            listener = bind_socket(Path(config.socket_path or default_socket_path()))
    except (SocketInUse, UnsafeRuntime) as exc:
        log.error("%s", exc)
        return 1
    return asyncio.run(Daemon(config, listener).run())


if __name__ == "__main__":
    sys.exit(main())
