"""Running a listener out of file descriptors, for the fronts' EMFILE tests."""

from __future__ import annotations

import asyncio
import resource
import socket
from pathlib import Path


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def exhaust_descriptors(port: int, seconds: float = 1.0) -> None:
    """Lower this process's descriptor limit to a few above what is open, connect to
    ``port`` until no descriptor is left (the server can accept none), wait ``seconds``,
    then close the clients and restore the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    clients: list[socket.socket] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds() + 4, hard))
    try:
        while True:  # fill every descriptor left; the server accepts none yet
            try:
                clients.append(socket.create_connection(("127.0.0.1", port)))
            except OSError:
                break
        await asyncio.sleep(seconds)  # many rests of accept_backoff, each trying again
    finally:
        for client in clients:
            client.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
