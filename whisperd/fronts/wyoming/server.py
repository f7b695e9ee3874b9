"""The Wyoming front: serves a listening TCP (or Unix) socket handed over by the daemon,
socket-activated by whisperd-wyoming.socket or bound from ``[wyoming] listen``. Its
connections are taken by whisperd.fronts.accept.Acceptor (capped; out of descriptors it
rests and logs once), each one served as an asyncio stream."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from wyoming.error import Error

from whisperd.config import WyomingConfig, load_section
from whisperd.daemon.connection import Scheduler
from whisperd.daemon.listener import is_loopback
from whisperd.fronts import Activity, FrontConfig, FrontRefused
from whisperd.fronts.accept import Acceptor, refuse_now
from whisperd.fronts.wyoming.events import MAX_HEADER, encode_event
from whisperd.fronts.wyoming.session import Served, Session

log = logging.getLogger("whisperd")

# A refused connection is drained this long (and this much) before it is closed, and
# only so many at once (see WyomingFront.refuse).
REFUSED_LINGER_SECONDS = 0.5
REFUSED_READ_BYTES = 64 * 1024
MAX_LINGERING = 16


def check_address(sock: socket.socket, allow_remote: bool) -> None:
    """Wyoming has no authentication: refuse a socket reachable from other machines
    unless ``wyoming.allow_remote`` says so."""
    if not allow_remote and not is_loopback(sock):
        raise FrontRefused(
            f"the Wyoming socket listens on {sock.getsockname()[0]}, beyond this machine, and "
            "Wyoming has no authentication; listen on 127.0.0.1 or set "
            "wyoming.allow_remote = true (docs/wyoming.md)"
        )


class StreamProtocol(asyncio.StreamReaderProtocol):
    """What asyncio's stream server makes for a connection, telling the Acceptor when
    the connection is gone."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        release: Callable[[], None],
    ) -> None:
        super().__init__(reader, serve)
        self.release = release

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.release()


def stream(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    release: Callable[[], None],
) -> StreamProtocol:
    return StreamProtocol(asyncio.StreamReader(limit=MAX_HEADER), serve, release)


def refusal(limit: int) -> bytes:
    message = f"whisperd serves at most {limit} Wyoming connections at once"
    return encode_event(Error(text=message, code="too_many_connections").event())


class WyomingFront:
    name = "wyoming"

    def __init__(self, served: Served, allow_remote: bool) -> None:
        self.served = served
        self.allow_remote = allow_remote
        self.acceptor: Acceptor | None = None
        self.sessions: dict[Session, asyncio.Task[None]] = {}
        self.refusing: set[asyncio.Task[None]] = set()
        self.refusal = refusal(served.limits.max_connections)
        self.lingering = 0  # refused connections being drained before they are closed

    async def start(self, sock: socket.socket) -> None:
        check_address(sock, self.allow_remote)
        limits = self.served.limits
        self.acceptor = Acceptor(
            self.name,
            sock,
            lambda release: stream(self.accept, release),
            self.refuse,
            limits.max_connections,
            limits,
        )
        self.acceptor.start()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self.served, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self.sessions[session] = task
        try:
            await session.serve()
        finally:
            del self.sessions[session]

    def refuse(self, conn: socket.socket) -> None:
        """Send the refusal, then read and drop what the client already sent for a moment:
        closing with its bytes unread makes the kernel reset the connection, and the client
        would see "connection reset" instead of the reason. Bounded in time, in bytes and
        in how many refused connections linger at once, so a flood costs nothing lasting:
        beyond that, only what has already arrived is read."""
        if self.lingering >= MAX_LINGERING:
            refuse_now(conn, self.refusal)
            return
        self.lingering += 1
        task = asyncio.ensure_future(self.linger(conn))
        self.refusing.add(task)
        task.add_done_callback(self.refusing.discard)

    async def linger(self, conn: socket.socket) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=MAX_HEADER)
            writer.write(self.refusal)
            writer.write_eof()
            await asyncio.wait_for(reader.read(REFUSED_READ_BYTES), REFUSED_LINGER_SECONDS)
        except (TimeoutError, OSError):
            pass  # the client went away or kept quiet: close all the same
        finally:
            self.lingering -= 1
            if writer is not None:
                writer.close()
            else:
                conn.close()

    async def stop(self, grace: float) -> None:
        """Stop accepting; requests in progress get ``grace`` seconds to be answered, then
        their clients are told ``shutting_down``; every connection is closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.acceptor is not None:
            self.acceptor.stop()
        for refusing in self.refusing:
            refusing.cancel()
        busy = [
            asyncio.ensure_future(session.idle.wait())
            for session in self.sessions
            if not session.idle.is_set()
        ]
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace)
            for waiting in late:
                waiting.cancel()
        tasks = list(self.sessions.values())
        for session in list(self.sessions):
            session.shut_down()
        if tasks:  # closing flushes what is left to send: bounded too
            await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.1))


def make_front(scheduler: Scheduler, activity: Activity, config: FrontConfig) -> WyomingFront:
    """The factory the daemon's lifecycle calls (whisperd.fronts.REGISTRY)."""
    section = load_section(config.raw, "wyoming", WyomingConfig)
    served = Served(scheduler, activity, config.daemon, config.limits, section.streaming)
    return WyomingFront(served, section.allow_remote)
