"""The whisperctl end of the control socket. Standard library only (whisperctl starts fast
and never imports numpy or faster-whisper).

Like whisperd.client: the socket's directory must be private, the socket ours, and the
process listening on it must run as our uid (SO_PEERCRED) before a byte is sent.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from whisperd.control.protocol import (
    Action,
    Code,
    DictateRequest,
    FollowRequest,
    Reply,
    StatusRequest,
    parse_reply,
    receive,
    send,
)
from whisperd.protocol.framing import ProtocolError
from whisperd.runtime import check_socket_dir, check_socket_file, verify_daemon

CONNECT_TIMEOUT = 5.0
# A dictate reply waits for whisperd-keys' main loop (tens of milliseconds); generous.
REPLY_TIMEOUT = 10.0

START_HINT = (
    "start it with `systemctl --user start whisperd-keys` (or run `whisperd-keys`); "
    'for shortcuts without the input group set `trigger = "none"` in [keys]'
)


class KeysNotRunning(ConnectionError):
    """Nothing listens on the control socket; the message says how to start whisperd-keys."""


class ControlFailed(Exception):
    """whisperd-keys answered with an error, or with something that is not the protocol."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def connect(path: Path, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A connection to whisperd-keys at ``path``, checked (UnsafeRuntime if untrusted)."""
    check_socket_dir(path)
    if not check_socket_file(path):
        raise KeysNotRunning(f"whisperd-keys is not running (no {path}); {START_HINT}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        raise KeysNotRunning(f"whisperd-keys is not running ({path}); {START_HINT}") from None
    except OSError:
        sock.close()
        raise
    try:
        verify_daemon(sock, str(path))
    except BaseException:
        sock.close()
        raise
    return sock


class KeysBusy(ControlFailed):
    """whisperd-keys runs but refused this connection: too many commands or followers at
    once (``too_many_connections``); the message says which."""


REFUSAL_WAIT = 1.0  # seconds to read a refusal already sent when our request failed


def exchange(sock: socket.socket, message: dict[str, Any]) -> Reply:
    """Send one request and read its reply (ControlFailed, KeysBusy for an error)."""
    send_or_refused(sock, message)
    return _reply(sock)


def send_or_refused(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send ``message``; when that fails because whisperd-keys already closed the
    connection (EPIPE, ECONNRESET), raise the refusal it sent first if there is one (a
    full cap is refused at once, before the request arrives), else the OSError."""
    try:
        send(sock, message)
    except OSError as exc:
        refusal = pending_refusal(sock)
        if refusal is not None:
            raise refusal from None
        raise exc from None


def pending_refusal(sock: socket.socket) -> ControlFailed | None:
    """The error whisperd-keys sent before closing, if it is still there to read."""
    try:
        sock.settimeout(REFUSAL_WAIT)
        message = receive(sock)
    except (OSError, ProtocolError):
        return None
    try:
        _checked(message)
    except ControlFailed as exc:
        return exc
    return None


def _reply(sock: socket.socket) -> Reply:
    try:
        message = receive(sock)
    except ProtocolError as exc:
        raise ControlFailed(f"whisperd-keys sent something unexpected: {exc}") from None
    except ConnectionError:
        raise ControlFailed("whisperd-keys closed the connection without an answer") from None
    return _checked(message)


def _checked(message: dict[str, Any]) -> Reply:
    try:
        reply = parse_reply(message)
    except ValueError as exc:
        raise ControlFailed(f"whisperd-keys sent something unexpected: {exc}") from None
    if reply.kind == "error":
        if reply.code == Code.TOO_MANY_CONNECTIONS:
            raise KeysBusy(one_line(reply.message) or "whisperd-keys is too busy", reply.code)
        raise ControlFailed(one_line(reply.message) or reply.code, reply.code)
    return reply


def one_line(text: str) -> str:
    """whisperd-keys' words for a terminal: printable characters on one line."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def dictate(path: Path, action: Action, timeout: float = REPLY_TIMEOUT) -> str:
    """Send one dictate action; the dictation's state after it."""
    with connect(path) as sock:
        sock.settimeout(timeout)
        return exchange(sock, DictateRequest(action).to_message()).state


def status(path: Path, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """One status event (the whole JSON object)."""
    with connect(path) as sock:
        sock.settimeout(timeout)
        return dict(exchange(sock, StatusRequest().to_message()).raw or {})


def follow(sock: socket.socket, text: bool = False) -> Iterator[dict[str, Any]]:
    """Status events from a connected socket until whisperd-keys closes it (blocking reads;
    set the socket's timeout first if a silent peer must end the loop)."""
    send_or_refused(sock, FollowRequest(text).to_message())
    while True:
        try:
            message = receive(sock)
        except ConnectionError:
            return  # whisperd-keys stopped: the caller decides whether to reconnect
        except ProtocolError as exc:
            raise ControlFailed(f"whisperd-keys sent something unexpected: {exc}") from None
        yield dict(_checked(message).raw or {})
