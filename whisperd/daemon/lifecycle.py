"""The daemon's life: accept connections, the fronts (whisperd/fronts: HTTP, Wyoming), the
idle timer and its deadline race, signals, shutdown and status notifications. Shaped like
uvicorn's Server: ``run()`` starts up, waits for a reason to stop, and shuts down;
``DaemonState`` is what the parts share.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from whisperd import __version__
from whisperd.config import ConfigError, DaemonConfig
from whisperd.daemon.connection import Connection
from whisperd.daemon.limits import Limits
from whisperd.daemon.listener import Listener, notify, peer_uid
from whisperd.daemon.scheduler import Scheduler
from whisperd.daemon.state import DaemonState
from whisperd.daemon.worker import ModelHost
from whisperd.fronts import Front, FrontConfig, FrontFactory, FrontRefused, load_factory
from whisperd.protocol import ErrorCode, ErrorReply, encode_reply

log = logging.getLogger("whisperd")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class EarlySignals:
    """Stop signals caught before the event loop runs (while binding, loading modules).

    Installed first thing, so that a SIGTERM right after start never kills the process
    by the signal's default action and leaves a stale socket: the daemon starts, sees the
    signal and stops cleanly.
    """

    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> EarlySignals:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._record)
        return self

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        listener: Listener,
        early: EarlySignals | None = None,
        limits: Limits | None = None,
        engine: ModelHost | None = None,
    ) -> None:
        self.config = config
        self.listener = listener
        self.early = early
        self.limits = limits or Limits()
        self.state = DaemonState(socket_activated=listener.activated)
        self.scheduler = Scheduler(
            config,
            self.state,
            self.cancel_idle_timer,
            self.maybe_arm_idle_timer,
            engine,
            self.limits,
        )
        self.idle_since = time.monotonic()
        self.idle_handle: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[int] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # Accept errors: a rest before the next accept, and when to report them next.
        self.backoff: asyncio.TimerHandle | None = None
        self.accept_errors = 0
        self.accept_log_at = 0.0
        self.refuse_log_at = 0.0
        self.stop_deadline: float | None = None  # set by a stop signal: when we exit at last
        self.fronts: list[tuple[Front, socket.socket]] = []

    def build_fronts(
        self,
        raw: Mapping[str, Any] | None = None,
        factories: Mapping[str, FrontFactory] | None = None,
    ) -> None:
        """A front for each front socket the listener holds; FrontRefused when one cannot
        be built (its library missing, its section wrong). ``raw``: the parsed config file."""
        config = FrontConfig(self.config, raw or {}, self.limits)
        for name, sock in sorted(self.listener.fronts.items()):
            factory = (factories or {}).get(name) or load_factory(name)
            self.fronts.append((factory(self.scheduler, self, config), sock))

    # -- the fronts' requests count as activity (whisperd.fronts.Activity)

    def begin(self) -> None:
        self.state.front_requests += 1
        self.cancel_idle_timer()

    def end(self) -> None:
        self.state.front_requests = max(0, self.state.front_requests - 1)
        self.maybe_arm_idle_timer()

    # -- connections

    def on_readable(self) -> None:
        """Accept every pending connection, synchronously, so none is half-taken at exit."""
        while True:
            try:
                conn, _ = self.listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.accept_failed(exc)
                return
            self.start_connection(conn)

    def accept_failed(self, exc: OSError) -> None:
        """Out of file descriptors (EMFILE, ENFILE) or memory: the listening socket stays
        readable, so accepting again at once would spin. Rest, and log once per interval."""
        assert self.loop is not None
        now = time.monotonic()
        self.accept_errors += 1
        if now >= self.accept_log_at:
            more = f" ({self.accept_errors - 1} more since the last report)"
            log.error(
                "accept failed: %s%s; retrying every %.1f s",
                exc,
                more if self.accept_errors > 1 else "",
                self.limits.accept_backoff,
            )
            self.accept_errors = 0
            self.accept_log_at = now + self.limits.accept_log_interval
        if self.backoff is None and not self.state.stopping:
            self.loop.remove_reader(self.listener.sock.fileno())
            self.backoff = self.loop.call_later(self.limits.accept_backoff, self.end_backoff)

    def end_backoff(self) -> None:
        self.backoff = None
        if not self.state.stopping:
            self.resume_accepting()

    def start_connection(self, conn: socket.socket) -> None:
        uid = peer_uid(conn)
        if uid != os.getuid():
            log.warning("refused a connection from uid %d: whisperd serves only its user", uid)
            refuse(conn, ErrorCode.FORBIDDEN, "this whisperd serves another user")
            return
        if len(self.state.connections) + len(self.state.pending) >= self.limits.max_connections:
            if time.monotonic() >= self.refuse_log_at:  # once per interval, not per client
                log.warning("refusing connections: %d are open", self.limits.max_connections)
                self.refuse_log_at = time.monotonic() + self.limits.accept_log_interval
            refuse(
                conn,
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"whisperd serves at most {self.limits.max_connections} connections at once",
            )
            return
        self.cancel_idle_timer()
        # Counted before the handler runs, so the idle check can never miss it.
        placeholder = object()
        self.state.pending.add(placeholder)
        asyncio.ensure_future(self._serve(conn, placeholder))

    async def _serve(self, conn: socket.socket, placeholder: object) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=conn)
        connection = Connection(self.scheduler, reader, writer, self.limits)
        self.state.connections.add(connection)
        self.state.pending.discard(placeholder)
        try:
            await connection.serve()
        finally:
            self.state.connections.discard(connection)
            self.maybe_arm_idle_timer()

    # -- the idle exit

    def cancel_idle_timer(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
            self.idle_handle = None

    def maybe_arm_idle_timer(self) -> None:
        """Armed only when the last connection closes (or front request ends) and no work
        is left."""
        if self.state.in_use or self.scheduler.busy:
            return
        if self.state.stopping:
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
        if self.state.in_use or self.scheduler.busy or self.state.stopping:
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
            self.listener.release_own_socket()
        # A client that connected in the last instant is served, not dropped.
        self.on_readable()
        if self.state.open_connections:
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

    # -- starting and stopping

    def stop_accepting(self) -> None:
        assert self.loop is not None
        self.state.stopping = True
        self.loop.remove_reader(self.listener.sock.fileno())
        if self.backoff is not None:
            self.backoff.cancel()
            self.backoff = None

    def resume_accepting(self) -> None:
        assert self.loop is not None
        self.state.stopping = False
        self.loop.add_reader(self.listener.sock.fileno(), self.on_readable)

    def finish(self, code: int) -> None:
        notify("STOPPING=1")
        notify("STATUS=exiting")
        if self.done is not None and not self.done.done():
            self.done.set_result(code)

    def on_signal(self, signum: int) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.limits.stop_grace
        self.stop_accepting()
        self.finish(0)

    def install_signal_handlers(self) -> None:
        """The loop's handlers replace the early ones; a signal they caught is acted on."""
        assert self.loop is not None
        for signum in STOP_SIGNALS:
            self.loop.add_signal_handler(signum, self.on_signal, signum)
        if self.early is not None and self.early.received is not None:
            self.on_signal(self.early.received)

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.listener.sock.setblocking(False)
        self.loop.add_reader(self.listener.sock.fileno(), self.on_readable)
        self.install_signal_handlers()
        if not self.done.done() and not await self.start_fronts():
            self.finish(2)
        if self.done.done():
            await self.shutdown()
            return self.done.result()
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
        self.scheduler.set_status(self.scheduler.idle_status())
        code = await self.done
        await self.shutdown()
        return code

    async def start_fronts(self) -> bool:
        """Start every front before we report ready; False (logged) when one refuses."""
        for front, sock in self.fronts:
            try:
                await front.start(sock)
            except FrontRefused as exc:
                log.error("not starting: %s", exc)
                return False
            log.info("serving %s on %s", front.name, describe_socket(sock))
        return True

    async def stop_fronts(self) -> None:
        """Stop the fronts first: their requests in flight are answered or told we stop."""
        if self.fronts:
            grace = self.grace_left()
            await asyncio.gather(*(front.stop(grace) for front, _ in self.fronts))

    async def shutdown(self) -> None:
        await self.stop_fronts()
        connections = [c for c in self.state.connections if isinstance(c, Connection)]
        for connection in connections:
            connection.shut_down()  # `shutting_down` for each request in flight
        await self.close_all(connections)
        self.scheduler.shutdown()
        self.listener.close_all()

    async def close_all(self, connections: list[Connection]) -> None:
        """Flush and close every connection, within the stop grace: a client that reads
        nothing would otherwise hold the exit for ever. The rest are aborted."""
        if not connections:
            return
        closing = {asyncio.ensure_future(c.close()): c for c in connections}
        _, late = await asyncio.wait(closing, timeout=self.grace_left())
        for task in late:
            closing[task].writer.transport.abort()  # its client reads nothing
            task.cancel()

    def grace_left(self) -> float:
        """Seconds of the stop grace still left (all of it for an idle exit)."""
        if self.stop_deadline is None:
            return self.limits.stop_grace
        return max(0.0, self.stop_deadline - time.monotonic())


def refuse(conn: socket.socket, code: str, message: str) -> None:
    """Tell a connection we do not serve it why, without waiting on it, and close it."""
    try:
        conn.setblocking(True)
        conn.settimeout(1.0)
        conn.sendall(encode_reply(ErrorReply(None, code, message)))
    except OSError:
        pass
    conn.close()


def describe_socket(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "an inherited socket"
    if isinstance(name, tuple):
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(name) or "an unnamed socket"


def run_daemon(
    config: DaemonConfig,
    listener: Listener,
    early: EarlySignals | None,
    limits: Limits | None = None,
    engine: ModelHost | None = None,
    raw: Mapping[str, Any] | None = None,
) -> int:
    daemon = Daemon(config, listener, early, limits, engine)
    try:
        daemon.build_fronts(raw)
    except (FrontRefused, ConfigError) as exc:
        log.error("not starting: %s", exc)
        listener.close_all()
        return 2
    code = asyncio.run(daemon.run())
    # A decode still running was cancelled (its client told `shutting_down`); it stops at
    # its next segment. Do not wait past the grace (from the signal) for it: the worker thread
    # would otherwise hold the exit until the decode ends.
    if not daemon.scheduler.worker_idle.wait(daemon.grace_left()):
        log.warning("exiting without waiting for the running decode to stop")
        logging.shutdown()
        os._exit(code)
    return code
