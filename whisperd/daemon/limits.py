"""The daemon's resource limits that are not per-request options (docs/protocol.md lists
every limit a client can meet). Fixed values with room to spare for real clients; the
tests build smaller ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # Open connections at once; one more is told `too_many_connections` and closed. whisperd-keys
    # holds one, whisperctl one per command: 64 is far more than a desktop uses.
    max_connections: int = 64
    # After an accept error (EMFILE, ENFILE: no file descriptor left) the listener rests
    # this long instead of spinning on a socket that stays readable; logged once per rest.
    accept_backoff: float = 1.0
    accept_log_interval: float = 60.0
    # A connection with no request in flight that sends nothing for this long is closed,
    # so a forgotten client cannot keep the daemon (and the model's memory) alive.
    idle_connection: float = 120.0
    # A request receiving audio whose client sends nothing for this long is dropped with
    # `timeout` and the connection closed. A live stream sends audio every few ms.
    stalled_stream: float = 60.0
    # All audio the daemon holds at once, over every request (received, not yet
    # transcribed); over it a request is refused with `overloaded`.
    max_buffered_audio: int = 1024 * 1024 * 1024
    # On SIGTERM, clients are told `shutting_down`; the process exits at once after
    # that, without waiting for a running decode longer than this.
    stop_grace: float = 2.0
