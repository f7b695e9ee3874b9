"""The whisperd-keys end of the control socket: an asyncio loop in its own thread.

whisperd-keys is threaded (keyboards, sessions, typists); the control socket gets one
thread running an event loop, so that clients, idle timeouts and followers cost no thread
each. Commands and followers have their own caps (MAX_CONNECTIONS, MAX_FOLLOWERS): a
connection takes a command slot until it asks to follow, then a follower slot instead, so
16 bars never lock out a shortcut's ``whisperctl dictate``. A connection over a cap gets a
``too_many_connections`` frame saying which one before it is closed. Requests reach
whisperd-keys through a ``ControlHandler`` (called in the loop's executor: it may block
briefly), status changes leave through ``publish`` (from any thread).

Every byte from a client is hostile: a frame is capped before it is read, bad JSON or a
bad field gets an error reply and the connection stays usable, a broken frame or a
silent client costs that connection only, never the program. The socket file is 0600 in
a private directory (whisperd.runtime), and a peer running as another uid is dropped
before a byte is read (SO_PEERCRED), even though the directory already keeps others out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Protocol

from whisperd.control.protocol import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_FOLLOWERS,
    Action,
    Code,
    ControlError,
    DictateRequest,
    FollowRequest,
    decode_request,
    ok_reply,
    too_many_connections,
    too_many_followers,
)
from whisperd.protocol.framing import MAX_JSON_FRAME, ProtocolError, encode_message, read_frame
from whisperd.runtime import UnsafeRuntime, check_socket_dir, check_socket_file, peer_credentials

log = logging.getLogger(__name__)

FOLLOW_QUEUE = 64  # status events a follower may fall behind before it is dropped
WRITE_TIMEOUT = 5.0  # a follower that reads nothing for this long is dropped
DISCARD_LIMIT = 4096  # bytes a follower may send (ignored) per read


class Snapshot(Protocol):
    # Grows with each change published: a follower's first status is taken on the loop
    # while changes published just before it may still wait there to be broadcast, and
    # sent after it they would show a bar an older state for a moment.
    @property
    def version(self) -> int: ...

    def to_json(self, with_text: bool = False) -> dict[str, Any]: ...


class ControlHandler(Protocol):
    def dictate(self, action: Action) -> str:
        """Do ``action``; the state after it. Raises ControlError (busy, unavailable)."""
        ...

    def snapshot(self) -> Snapshot: ...


class AlreadyRunning(UnsafeRuntime):
    """Another process answers on the control socket (a second whisperd-keys)."""


def claim_socket_path(path: Path) -> None:
    """Make ``path`` free to bind: refuse a private-directory or ownership problem, refuse
    a socket somebody answers on, remove a stale one nobody answers on."""
    check_socket_dir(path)
    if not check_socket_file(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing the stale control socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except OSError as exc:
        raise UnsafeRuntime(f"cannot check the control socket {path}: {exc}") from None
    finally:
        probe.close()
    raise AlreadyRunning(
        f"another whisperd-keys answers on {path}; stop it first "
        "(systemctl --user stop whisperd-keys)"
    )


def bind_private(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from the start (umask during bind)."""
    claim_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise UnsafeRuntime(f"cannot create the control socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(MAX_CONNECTIONS + MAX_FOLLOWERS)
    sock.setblocking(False)
    return sock


class _Follower:
    def __init__(self, writer: asyncio.StreamWriter, text: bool) -> None:
        self.writer = writer
        self.text = text
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(FOLLOW_QUEUE)
        self.seen = -1  # the version of the newest status queued for it

    def is_news(self, status: Snapshot) -> bool:
        """Whether ``status`` is newer than all this follower was given; then it is."""
        if status.version <= self.seen:
            return False
        self.seen = status.version
        return True


class _Slot:
    """Which cap one connection counts against: a command slot from the start, a follower
    slot once it asks to follow (the command slot is then freed at once)."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.kind = "command"

    def to_follower(self) -> bool:
        """Move to a follower slot; False when every follower slot is taken."""
        if self.server.following >= self.server.max_followers:
            return False
        self.server.connections -= 1
        self.server.following += 1
        self.kind = "follower"
        return True

    def release(self) -> None:
        if self.kind == "command":
            self.server.connections -= 1
        elif self.kind == "follower":
            self.server.following -= 1
        self.kind = "released"


class ControlServer:
    def __init__(
        self,
        path: Path,
        handler: ControlHandler,
        allow_text: bool = False,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        max_followers: int = MAX_FOLLOWERS,
    ) -> None:
        self.path = path
        self.handler = handler
        self.allow_text = allow_text  # [keys] status_text
        self.max_connections = max_connections  # commands, and connections yet to ask
        self.max_followers = max_followers
        self.idle_timeout = idle_timeout
        self.connections = 0  # holding a command slot (followers are counted apart)
        self.following = 0  # holding a follower slot
        self._followers: set[_Follower] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="whisperd-keys-control", daemon=True)
        self._sock: socket.socket | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def followers(self) -> int:
        return len(self._followers)

    # -- life -------------------------------------------------------------------------
    def start(self) -> None:
        """Bind now (errors reach the caller), then serve in the background."""
        self._sock = bind_private(self.path)
        self._loop = asyncio.new_event_loop()
        self._thread.start()
        self._ready.wait()
        log.info("control socket: %s", self.path)

    def close(self) -> None:
        if self._thread.is_alive() and self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=5.0)
        if self._sock is not None:  # the listening socket: closed by the server, or here
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._sock.close()
            self._sock = None

    def publish(self, status: Snapshot) -> None:
        """From any thread: send ``status`` to every follower."""
        if not self._thread.is_alive() or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: shutting down
            self._loop.call_soon_threadsafe(self._broadcast, status)

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        assert self._sock is not None
        server = await asyncio.start_unix_server(
            self._serve, sock=self._sock, limit=MAX_JSON_FRAME + 64
        )
        self._ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            # Followers see their stream end; every other connection is dropped too.
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one connection ---------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._same_user(writer):
            await self._close(writer)
            return
        if self.connections >= self.max_connections:
            message = too_many_connections(self.max_connections)
            await self._refuse(writer, Code.TOO_MANY_CONNECTIONS, message)
            return
        self.connections += 1
        slot = _Slot(self)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._requests(reader, writer, slot)
        except ProtocolError as exc:  # a broken frame: this connection cannot go on
            await self._refuse(writer, exc.code, exc.message)
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.debug("control connection ended: %s", exc)
        except asyncio.CancelledError:
            # Shutting down. Ending normally: asyncio's stream callback would log a
            # cancelled connection task as an error.
            pass
        finally:
            slot.release()
            if task is not None:
                self._tasks.discard(task)
            await self._close(writer)

    def _same_user(self, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_credentials(sock)
        except OSError:
            return False
        if peer.uid != os.getuid():
            log.warning("refused a control connection from uid %d (pid %d)", peer.uid, peer.pid)
            return False
        return True

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slot: _Slot
    ) -> None:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            # that arrives as the awaited call completes, and shutdown would hang.
            try:
                async with asyncio.timeout(self.idle_timeout):
                    payload = await read_frame(reader, MAX_JSON_FRAME, "control")
            except TimeoutError:
                await self._send(writer, ControlError(Code.TIMEOUT, "idle too long").to_message())
                return
            if payload is None:
                return
            try:
                request = decode_request(payload)
                if isinstance(request, FollowRequest):
                    if not slot.to_follower():
                        await self._send(
                            writer,
                            ControlError(
                                Code.TOO_MANY_CONNECTIONS, too_many_followers(self.max_followers)
                            ).to_message(),
                        )
                        return
                    await self._follow(reader, writer, request.text)
                    return
                reply = await self._answer(request)
            except ControlError as exc:
                reply = exc.to_message()
            await self._send(writer, reply)

    async def _answer(self, request: Any) -> dict[str, Any]:
        if isinstance(request, DictateRequest):
            loop = asyncio.get_running_loop()
            state = await loop.run_in_executor(None, self.handler.dictate, request.action)
            return ok_reply(state)
        return self.handler.snapshot().to_json(with_text=False)

    # -- followers --------------------------------------------------------------------
    async def _follow(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: bool
    ) -> None:
        follower = _Follower(writer, text and self.allow_text)
        self._followers.add(follower)
        try:
            first = self.handler.snapshot()
            follower.is_news(first)
            await self._send(writer, first.to_json(with_text=follower.text))
            tasks = {
                asyncio.ensure_future(self._pump(follower)),
                asyncio.ensure_future(self._until_eof(reader)),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # re-raise a write error (handled by _serve)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._followers.discard(follower)

    async def _pump(self, follower: _Follower) -> None:
        while True:
            event = await follower.queue.get()
            follower.writer.write(encode_message(event))
            async with asyncio.timeout(WRITE_TIMEOUT):
                await follower.writer.drain()

    async def _until_eof(self, reader: asyncio.StreamReader) -> None:
        # A follower has nothing more to say: what it sends is read and dropped.
        while await reader.read(DISCARD_LIMIT):
            pass

    def _broadcast(self, status: Snapshot) -> None:
        plain = status.to_json(with_text=False)
        full = status.to_json(with_text=True) if self.allow_text else plain
        for follower in list(self._followers):
            if not follower.is_news(status):
                continue
            try:
                follower.queue.put_nowait(full if follower.text else plain)
            except asyncio.QueueFull:
                log.info("dropping a control follower that reads nothing")
                self._followers.discard(follower)
                follower.writer.close()

    # -- writing ----------------------------------------------------------------------
    async def _send(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        writer.write(encode_message(message))
        async with asyncio.timeout(WRITE_TIMEOUT):
            await writer.drain()

    async def _refuse(self, writer: asyncio.StreamWriter, code: str, message: str) -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await self._send(writer, {"type": "error", "code": code, "message": message})
        await self._close(writer)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
