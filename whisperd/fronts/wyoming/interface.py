"""The Front interface of docs (notes) "fronts", as whisperd/fronts/__init__.py will hold
it: a copy until that module is merged, then this file imports from it and goes away."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from whisperd.config import DaemonConfig
from whisperd.daemon.limits import Limits


class Activity(Protocol):
    """The daemon's idle accounting: begin() when a request starts, end() when it is
    answered. An open connection with no request is not activity."""

    def begin(self) -> None: ...

    def end(self) -> None: ...


class Front(Protocol):
    name: str

    async def start(self, sock: socket.socket) -> None: ...

    async def stop(self, grace: float) -> None: ...


@dataclass(frozen=True)
class FrontConfig:
    daemon: DaemonConfig
    raw: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)


class FrontRefused(Exception):
    """A front cannot or must not be served; the daemon does not start."""
