"""How a front takes connections off its listening socket. whisperd accepts them itself,
not asyncio's server, so that at most ``cap`` are open at once (one more is told why and
closed: idle connections cost a descriptor each, and a flood of them would take every
descriptor of the daemon) and so that running out of descriptors rests the listener and
is logged once per interval, as on the Unix socket, instead of asyncio's traceback per
attempt. Imports no third-party library: both fronts use it."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from whisperd.daemon.limits import Limits

log = logging.getLogger("whisperd")

ACCEPT_BATCH = 64  # connections taken per wake-up, so that a flood cannot hog the loop


class OncePer:
    """A log line written at most once per ``interval`` seconds, saying how many were
    left out: a flood of bad clients must not flood the journal."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next_at = 0.0
        self.left_out = 0

    def log(self, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.left_out += 1
            return
        more = f" ({self.left_out} more since the last report)" if self.left_out else ""
        log.log(level, message + "%s", *args, more)
        self.left_out = 0
        self.next_at = now + self.interval


Protocol = Callable[[Callable[[], None]], asyncio.Protocol]  # made with its release
Refuse = Callable[[socket.socket], None]  # tells a connection over the cap why; closes it


class Acceptor:
    """Takes connections off a front's listening socket, as many as the cap allows; the
    front's ``protocol`` serves each one, its ``refuse`` answers those over the cap."""

    def __init__(
        self,
        front: str,
        sock: socket.socket,
        protocol: Protocol,
        refuse: Refuse,
        cap: int,
        limits: Limits,
    ) -> None:
        self.front = front  # "http" or "wyoming": the log lines say which
        self.sock = sock
        self.protocol = protocol
        self.refuse = refuse
        self.cap = cap
        self.limits = limits
        self.open = 0
        self.accepting = False
        self.backoff: asyncio.TimerHandle | None = None
        self.failures = OncePer(limits.accept_log_interval)
        self.refusals = OncePer(limits.accept_log_interval)
        self.starting: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        self.sock.setblocking(False)
        self.accepting = True
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self.on_readable)

    def stop(self) -> None:
        if self.accepting:
            self.accepting = False
            if self.backoff is not None:
                self.backoff.cancel()
                self.backoff = None
            else:
                asyncio.get_running_loop().remove_reader(self.sock.fileno())

    def on_readable(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up before we took it
            except OSError as exc:
                self.accept_failed(exc)
                return
            if self.open >= self.cap:
                self.refusals.log(
                    logging.WARNING, "%s: refusing connections: %d are open", self.front, self.cap
                )
                self.refuse(conn)
            else:
                self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        self.open += 1
        released = False

        def release() -> None:  # once, whether the connection ends or never starts
            nonlocal released
            if not released:
                released = True
                self.open -= 1

        loop = asyncio.get_running_loop()
        starting = asyncio.ensure_future(
            loop.connect_accepted_socket(lambda: self.protocol(release), conn)
        )
        self.starting.add(starting)

        def started(future: asyncio.Future[Any]) -> None:
            self.starting.discard(future)
            if future.cancelled() or future.exception() is not None:
                conn.close()
                release()

        starting.add_done_callback(started)

    def accept_failed(self, exc: OSError) -> None:
        """Out of descriptors (EMFILE, ENFILE) or memory: the listening socket stays
        readable, so accepting again at once would spin. Rest, and log once per interval."""
        kind = errno.errorcode.get(exc.errno or 0, "")
        self.failures.log(
            logging.ERROR,
            "%s: accept failed (%s): %s; retrying every %.1f s",
            self.front,
            kind,
            exc.strerror,
            self.limits.accept_backoff,
        )
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.sock.fileno())
        self.backoff = loop.call_later(self.limits.accept_backoff, self.end_backoff)

    def end_backoff(self) -> None:
        self.backoff = None
        if self.accepting:
            asyncio.get_running_loop().add_reader(self.sock.fileno(), self.on_readable)


def refuse_now(conn: socket.socket, answer: bytes) -> None:
    """Tell a connection over the cap why, without waiting on it, and close it."""
    try:
        conn.setblocking(False)
        conn.send(answer)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(65536)  # what the client sent already: unread, closing would reset
    except OSError:
        pass  # gone already, or nothing sent yet
    finally:
        conn.close()
