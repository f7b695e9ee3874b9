"""The HTTP front's connections. whisperd accepts them itself, not asyncio's server, so
that at most ``cap`` are open at once (one more is answered 503 and closed: idle
connections cost a descriptor each, and a flood of them would take every descriptor of
the daemon) and so that running out of descriptors rests the listener and
is logged once, as on the Unix socket. aiohttp's connection handler serves each one; its
answer to a request it cannot parse is OpenAI's error object, and its log of one is a
quiet line that does not repeat the client's bytes."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from whisperd.daemon.limits import Limits
from whisperd.fronts.http.errors import ApiError

log = logging.getLogger("whisperd")

ACCEPT_BATCH = 64  # connections taken per wake-up, so that a flood cannot hog the loop
# Client faults that reach aiohttp's handler rather than ours: a request it cannot parse,
# a body that breaks off or is malformed while aiohttp drops it after our answer.
CLIENT_FAULTS = (HttpProcessingError, web.RequestPayloadError, ConnectionError)


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


class ConnectionHandler(web.RequestHandler):
    """aiohttp's connection handler, with OpenAI-shaped answers to unparsable requests and
    quiet logs of client faults; it tells ``release`` when its connection is gone."""

    def __init__(
        self, manager: web.Server, release: Callable[[], None], faults: OncePer, **options: Any
    ) -> None:
        super().__init__(manager, **options)
        self.release = release
        self.faults = faults

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.release()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (400) or a handler that failed
        (500: our middleware answers every error first, so a bug in whisperd)."""
        if status < 500:
            self.faults.log(logging.INFO, "http: refused a malformed HTTP request (%s)", name(exc))
        else:
            log.error("http: a request failed unexpectedly", exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had begun; the connection is dropped")
        response = ApiError(status, client_message(status, exc), code_of(status)).response()
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's log of an error outside a handler: a body dropped after our answer
        that turns out malformed is the client's fault, anything else a bug."""
        exc = kw.get("exc_info")
        if isinstance(exc, CLIENT_FAULTS):
            self.faults.log(logging.INFO, "http: dropped a malformed request body (%s)", name(exc))
        else:
            log.error("http: unexpected error in a connection", exc_info=exc)


def name(exc: BaseException | None) -> str:
    return type(exc).__name__ if exc is not None else "no details"


def client_message(status: int, exc: BaseException | None) -> str:
    """What the client is told: aiohttp's own messages can quote the request's bytes."""
    if status >= 500:
        return "internal error in whisperd; its log says why"
    if isinstance(exc, LineTooLong):
        return "malformed HTTP request: a request or header line is over 8190 bytes"
    return f"malformed HTTP request ({name(exc)})"


def code_of(status: int) -> str:
    return "internal" if status >= 500 else "bad_request"


Protocol = Callable[[Callable[[], None]], asyncio.Protocol]  # made with its release


class Acceptor:
    """Takes connections off the front's listening socket, as many as the cap allows."""

    def __init__(self, sock: socket.socket, protocol: Protocol, cap: int, limits: Limits) -> None:
        self.sock = sock
        self.protocol = protocol
        self.cap = cap
        self.limits = limits
        self.open = 0
        self.accepting = False
        self.backoff: asyncio.TimerHandle | None = None
        self.failures = OncePer(limits.accept_log_interval)
        self.refusals = OncePer(limits.accept_log_interval)
        self.starting: set[asyncio.Future[Any]] = set()
        self.refusal = refusal_bytes(cap)

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

    def refuse(self, conn: socket.socket) -> None:
        """Tell a connection over the cap why, without waiting on it, and close it."""
        self.refusals.log(logging.WARNING, "http: refusing connections: %d are open", self.cap)
        try:
            conn.setblocking(False)
            conn.send(self.refusal)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(65536)  # what the client sent already: unread, closing would reset
        except OSError:
            pass  # gone already, or nothing sent yet
        finally:
            conn.close()

    def accept_failed(self, exc: OSError) -> None:
        """Out of descriptors (EMFILE, ENFILE) or memory: the listening socket stays
        readable, so accepting again at once would spin. Rest, and log once per interval."""
        kind = errno.errorcode.get(exc.errno or 0, "")
        self.failures.log(
            logging.ERROR,
            "http: accept failed (%s): %s; retrying every %.1f s",
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


def refusal_bytes(limit: int) -> bytes:
    """What a connection over the cap is told: HTTP/1.1 and OpenAI's error object."""
    message = f"whisperd serves at most {limit} HTTP connections at once; try again"
    body = json.dumps(ApiError(503, message, "too_many_connections").body()).encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
