"""``whisperctl status --follow``: whisperd-keys's dictation status, one line per change,
for bars (Waybar, i3blocks, polybar), overlays and scripts.

A bar runs for days, so the loop never gives up: while whisperd-keys is not running it
prints one ``stopped`` line per outage and tries again every second, quietly. It only ever
connects to whisperd-keys's control socket, never to whisperd's (that would start the
daemon). SIGINT and SIGTERM end it with status 0; a reader that goes away (EPIPE) ends it
through whisperctl's usual path. Standard library only: whisperctl imports this.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from whisperd.control import client as control_client
from whisperd.control.protocol import FollowRequest, receive, send
from whisperd.protocol.framing import ProtocolError
from whisperd.runtime import UnsafeRuntime
from whisperd.statusfmt import check_event, format_event, stopped_event

RETRY_SECONDS = 1.0
CONNECT_TIMEOUT = 5.0


class StopFollowing(Exception):
    """SIGTERM: leave the loop as a Ctrl-C would."""


class KeysUnavailable(Exception):
    """whisperd-keys does not answer on its control socket (not running, or restarting)."""


def connect(path: Path) -> socket.socket:
    """A checked connection to our own whisperd-keys (whisperd.control.client: UnsafeRuntime
    before a byte is sent if the socket or its process is not ours); KeysUnavailable when
    nothing answers: not running, refused, gone, its backlog full (EAGAIN)."""
    try:
        sock = control_client.connect(path, timeout=CONNECT_TIMEOUT)
    except UnsafeRuntime:
        raise
    except OSError as exc:
        raise KeysUnavailable(str(exc)) from None
    sock.settimeout(None)  # events come when the state changes: wait as long as needed
    return sock


def events(sock: socket.socket, with_text: bool) -> Iterator[dict[str, Any]]:
    """The checked status events of one follow connection, until it ends."""
    # OSError, never BrokenPipeError alone: whisperctl reads that as its reader leaving.
    try:
        send(sock, FollowRequest(with_text).to_message())
    except OSError:
        return  # whisperd-keys went away between connect and request
    while True:
        try:
            message = receive(sock)
        except (OSError, ProtocolError):
            return  # closed (whisperd-keys stopped), reset, timed out or garbled: reconnect
        if message.get("type") == "error":
            return  # e.g. too many connections: try again like after an outage
        event = check_event(message)
        if event is not None:
            yield event


class Follower:
    """The loop, with its output and clock given (tests pass their own)."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        with_text: bool,
        out: TextIO,
        clock: Callable[[], float] = time.time,
        retry: float = RETRY_SECONDS,
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.with_text = with_text
        self.out = out
        self.clock = clock
        self.retry = retry
        self._said_stopped = False

    def emit(self, event: dict[str, Any]) -> None:
        self.out.write(format_event(event, self.fmt) + "\n")
        self.out.flush()  # a bar reads line by line: never hold one back

    def run_once(self) -> None:
        """Follow one connection to its end, or note the outage."""
        try:
            sock = connect(self.path)
        except KeysUnavailable:
            self.outage()
            return
        with sock:
            for event in events(sock, self.with_text):
                self._said_stopped = False
                self.emit(event)
        self.outage()

    def outage(self) -> None:
        if not self._said_stopped:
            self._said_stopped = True
            self.emit(stopped_event(round(self.clock(), 3)))

    def run(self) -> None:
        while True:
            self.run_once()
            time.sleep(self.retry)

    def print_current(self) -> None:
        """``--once``: the state now, one line, for widgets that poll a command."""
        try:
            sock = connect(self.path)
        except KeysUnavailable:
            self.outage()
            return
        with sock:
            sock.settimeout(CONNECT_TIMEOUT)
            first = next(events(sock, self.with_text), None)
        if first is None:
            self.outage()
        else:
            self.emit(first)


def raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopFollowing


def follow(path: Path, fmt: str, with_text: bool, once: bool = False) -> int:
    """Run until SIGINT or SIGTERM (status 0), or print one line with ``once``;
    BrokenPipeError and UnsafeRuntime go up to whisperctl's handlers."""
    previous = signal.signal(signal.SIGTERM, raise_stop)
    follower = Follower(path, fmt, with_text, sys.stdout)
    try:
        if once:
            follower.print_current()
        else:
            follower.run()
    except (KeyboardInterrupt, StopFollowing):
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
