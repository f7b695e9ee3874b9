"""The Wyoming front: serves a listening TCP (or Unix) socket handed over by the daemon,
socket-activated by whisperd-wyoming.socket or bound from ``[wyoming] listen``."""

from __future__ import annotations

import asyncio
import logging
import socket

from wyoming.error import Error

from whisperd.config import WyomingConfig, load_section
from whisperd.daemon.connection import Scheduler
from whisperd.daemon.listener import is_loopback
from whisperd.fronts import Activity, FrontConfig, FrontRefused
from whisperd.fronts.wyoming.events import MAX_HEADER, encode_event
from whisperd.fronts.wyoming.session import Served, Session

log = logging.getLogger("whisperd")


def check_address(sock: socket.socket, allow_remote: bool) -> None:
    """Wyoming has no authentication: refuse a socket reachable from other machines
    unless ``wyoming.allow_remote`` says so."""
    if not allow_remote and not is_loopback(sock):
        raise FrontRefused(
            f"the Wyoming socket listens on {sock.getsockname()[0]}, beyond this machine, and "
            "Wyoming has no authentication; listen on 127.0.0.1 or set "
            "wyoming.allow_remote = true (docs/wyoming.md)"
        )


class WyomingFront:
    name = "wyoming"

    def __init__(self, served: Served, allow_remote: bool) -> None:
        self.served = served
        self.allow_remote = allow_remote
        self.server: asyncio.Server | None = None
        self.sessions: dict[Session, asyncio.Task[None]] = {}
        self.refuse_logged = False

    async def start(self, sock: socket.socket) -> None:
        check_address(sock, self.allow_remote)
        sock.setblocking(False)
        if sock.family == socket.AF_UNIX:
            self.server = await asyncio.start_unix_server(self.accept, sock=sock, limit=MAX_HEADER)
        else:
            self.server = await asyncio.start_server(self.accept, sock=sock, limit=MAX_HEADER)
        log.info("wyoming: serving %s", sock.getsockname())

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limit = self.served.limits.max_connections
        if len(self.sessions) >= limit:
            if not self.refuse_logged:  # once until a connection closes, not once per client
                log.warning("wyoming: refusing connections: %d are open", limit)
                self.refuse_logged = True
            message = f"whisperd serves at most {limit} Wyoming connections at once"
            writer.write(encode_event(Error(text=message, code="too_many_connections").event()))
            writer.close()  # flushes the one event, then closes
            return
        session = Session(self.served, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self.sessions[session] = task
        try:
            await session.serve()
        finally:
            del self.sessions[session]
            self.refuse_logged = False

    async def stop(self, grace: float) -> None:
        """Stop accepting; requests in progress get ``grace`` seconds to be answered, then
        their clients are told ``shutting_down``; every connection is closed."""
        if self.server is not None:
            self.server.close()
        busy = [session.idle.wait() for session in self.sessions if not session.idle.is_set()]
        if busy:
            await asyncio.wait([asyncio.ensure_future(b) for b in busy], timeout=grace)
        tasks = list(self.sessions.values())
        for session in list(self.sessions):
            session.shut_down()
        if tasks:
            await asyncio.wait(tasks, timeout=max(grace, 0.1))


def make_front(scheduler: Scheduler, activity: Activity, config: FrontConfig) -> WyomingFront:
    """The factory the daemon's lifecycle calls (whisperd.fronts.REGISTRY)."""
    section = load_section(config.raw, "wyoming", WyomingConfig)
    served = Served(scheduler, activity, config.daemon, config.limits, section.streaming)
    return WyomingFront(served, section.allow_remote)
