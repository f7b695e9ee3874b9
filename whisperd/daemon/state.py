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
    # Requests of the fronts (HTTP, Wyoming) begun and not yet answered. Their connections
    # are not counted: an idle keep-alive connection must not keep the daemon up.
    front_requests: int = 0

    @property
    def open_connections(self) -> bool:
        return bool(self.connections or self.pending)

    @property
    def in_use(self) -> bool:
        """A Unix connection is open or a front's request is in progress."""
        return self.open_connections or self.front_requests > 0
