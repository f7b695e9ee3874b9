"""Fronts: other protocols served by the same daemon (OpenAI-compatible HTTP, Wyoming).

A front serves one listening socket (socket-activated and told apart by its
FileDescriptorName, or bound by the daemon from the front's ``listen`` setting) and sends
its jobs through the same ``Scheduler`` as a Unix connection, so every limit of the Unix
socket holds for it too. The lifecycle (whisperd/daemon/lifecycle.py) starts each front
before it reports ready, counts its requests for the idle exit, and stops it on exit.
Each front lives in its own package and is imported only when its socket is there, so its
library (aiohttp, wyoming) is needed only by those who serve it.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from whisperd.config import DaemonConfig
from whisperd.daemon.connection import Scheduler
from whisperd.daemon.limits import Limits

# name -> (module, factory, the pip extra that brings its library). The name is also the
# socket unit's FileDescriptorName= and the configuration section with its `listen` key.
REGISTRY: dict[str, tuple[str, str, str]] = {
    "http": ("whisperd.fronts.http", "make_front", "serve"),
    "wyoming": ("whisperd.fronts.wyoming", "make_front", "serve"),
}
FRONT_NAMES = tuple(REGISTRY)


class Activity(Protocol):
    """The daemon's idle accounting. begin() when a request starts, end() when it is
    answered. An open keep-alive/idle connection with no request is NOT activity: nothing
    pins the daemon alive. The lifecycle arms the idle timer when no Unix connection is
    open and no front request is in progress."""

    def begin(self) -> None: ...

    def end(self) -> None: ...


class Front(Protocol):
    name: str  # "http" or "wyoming": also the socket unit's FileDescriptorName

    async def start(self, sock: socket.socket) -> None:
        """Serve this listening socket; raise FrontRefused if it must not be served
        (say a non-loopback address without authentication)."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop accepting; answer or cancel the requests in flight within ``grace`` s."""
        ...


@dataclass(frozen=True)
class FrontConfig:
    """What a front is built from: the daemon's section (the audio caps), the whole parsed
    configuration file (the front loads and checks its own section with
    whisperd.config.load_section) and the daemon's resource limits."""

    daemon: DaemonConfig
    raw: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)


FrontFactory = Callable[[Scheduler, Activity, FrontConfig], Front]


class FrontRefused(Exception):
    """A front cannot or must not be served; the daemon does not start (exit status 2)."""


def load_factory(name: str) -> FrontFactory:
    """The factory of the front ``name``; FrontRefused when its library is not installed."""
    module_name, attribute, extra = REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise FrontRefused(
            f"the {name} front needs the Python package {exc.name!r}: install whisperd with "
            f"the '{extra}' extra (pip install 'whisperd[{extra}]')"
        ) from None
    factory: FrontFactory = getattr(module, attribute)
    return factory


def configured_listen(raw: Mapping[str, Any], name: str) -> str:
    """The front's own ``listen`` setting ("" = off), for a daemon not socket-activated."""
    section = raw.get(name)
    value = section.get("listen", "") if isinstance(section, Mapping) else ""
    return value if isinstance(value, str) else ""


def model_name(model: str) -> str:
    """The configured model as the fronts name it (Home Assistant's Wyoming info, the HTTP
    front's /v1/models): tiny.en for the bundled default, a path's last part, or the name
    configured."""
    from whisperd.engine.model import DEFAULT_MODEL_NAME

    if model == "default":
        return DEFAULT_MODEL_NAME
    return Path(model).name or model
