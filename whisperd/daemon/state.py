"""The small state the lifecycle, the scheduler and status replies share (uvicorn's
ServerState): who is connected and since when we run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class DaemonState:
    socket_activated: bool
    started: float = field(default_factory=time.monotonic)
    # Open connections, and accepted sockets whose connection does not exist yet (they
    # count as open, so the idle check can never miss one).
    connections: set[object] = field(default_factory=set)
    pending: set[object] = field(default_factory=set)
    stopping: bool = False  # no longer accepting: an idle deadline or a signal

    @property
    def open_connections(self) -> bool:
        return bool(self.connections or self.pending)
