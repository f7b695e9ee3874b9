"""``whisperctl status --follow``: whisperd-keys's dictation status, one line per change,
for bars (Waybar, i3blocks, polybar), overlays and scripts.

A bar runs for days, so the loop never gives up: while whisperd-keys is not running it
prints one ``stopped`` line per outage and tries again every second, quietly; refused
(too many followers) it prints one ``error`` line saying so and tries again the same way.
It only ever
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
from whisperd.control.protocol import FollowRequest, receive
from whisperd.protocol.framing import ProtocolError
from whisperd.runtime import UnsafeRuntime
from whisperd.statusfmt import MAX_REASON, check_event, format_event, one_line, stopped_event

RETRY_SECONDS = 1.0
CONNECT_TIMEOUT = 5.0


class StopFollowing(Exception):
    """SIGTERM: leave the loop as a Ctrl-C would."""


class KeysUnavailable(Exception):
    """whisperd-keys does not answer on its control socket (not running, or restarting)."""


class KeysRefused(Exception):
    """whisperd-keys runs but refused to be followed; the message says why (too many
    followers), as whisperd-keys put it, on one printable line."""


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
        control_client.send_or_refused(sock, FollowRequest(with_text).to_message())
    except control_client.ControlFailed as exc:  # refused before the request arrived
        raise KeysRefused(str(exc)) from None
    except OSError:
        return  # whisperd-keys went away between connect and request
    while True:
        try:
            message = receive(sock)
        except (OSError, ProtocolError):
            return  # closed (whisperd-keys stopped), reset, timed out or garbled: reconnect
        if message.get("type") == "error":
            raise KeysRefused(refusal_text(message))
        event = check_event(message)
        if event is not None:
            yield event


def refusal_text(message: dict[str, Any]) -> str:
    """An error frame's message for the error line (say "whisperd-keys has too many
    followers (16 …)"), or its code when it has none."""
    text = message.get("message")
    text = text if isinstance(text, str) and text.strip() else message.get("code")
    words = control_client.one_line(text if isinstance(text, str) else "")
    return words or "whisperd-keys refused the connection"


def refused_event(now: float, reason: str) -> dict[str, Any]:
    """What the follower prints while whisperd-keys refuses it (an ``error`` line)."""
    return {**stopped_event(now), "state": "error", "reason": one_line(reason, MAX_REASON)}


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
        self._said_refused = ""  # the refusal last printed (said once while it lasts)

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
            try:
                for event in events(sock, self.with_text):
                    self._said_stopped = False
                    self._said_refused = ""
                    self.emit(event)
            except KeysRefused as exc:
                self.refused(str(exc))
                return
        self.outage()

    def outage(self) -> None:
        self._said_refused = ""
        if not self._said_stopped:
            self._said_stopped = True
            self.emit(stopped_event(round(self.clock(), 3)))

    def refused(self, reason: str) -> None:
        self._said_stopped = False
        if self._said_refused != reason:
            self._said_refused = reason
            self.emit(refused_event(round(self.clock(), 3), reason))

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
            try:
                first = next(events(sock, self.with_text), None)
            except KeysRefused as exc:
                self.refused(str(exc))
                return
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
