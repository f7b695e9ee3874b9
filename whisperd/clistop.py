"""``whisperctl stop``: end the running whisperd, so that the next request starts a new
one (with the configuration as it is now: whisperd reads it once, at start).

whisperd says its process id in its status; it is sent SIGTERM, which it handles as a
service manager's stop: clients in the middle of a request are told ``shutting_down``,
the model's memory goes, the process exits with status 0 (under systemd the socket
stays with the manager and activates the next one). Standard library only.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from whisperd.client import EXIT_OK, EXIT_REQUEST_FAILED, Client, DaemonUnavailable

EXIT_WAIT = 15.0  # seconds to wait for the process to be gone


def stop(socket: str, timeout: float, connect_timeout: float) -> int:
    try:
        with Client.connect(
            socket, timeout=timeout, autostart=False, connect_timeout=connect_timeout
        ) as client:
            pid = client.status().get("pid")
    except DaemonUnavailable:
        print("whisperd is not running")
        return EXIT_OK
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        print(f"whisperctl: whisperd gave no usable process id ({pid!r})", file=sys.stderr)
        return EXIT_REQUEST_FAILED
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print("whisperd is not running")
        return EXIT_OK
    except PermissionError:
        print(f"whisperctl: whisperd (pid {pid}) is not yours to stop", file=sys.stderr)
        return EXIT_REQUEST_FAILED
    if not wait_gone(pid, EXIT_WAIT):
        print(f"whisperctl: whisperd (pid {pid}) is still stopping", file=sys.stderr)
        return EXIT_REQUEST_FAILED
    print("whisperd stopped; the next request starts it again")
    return EXIT_OK


def wait_gone(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` has exited within ``seconds`` (an exited process whose
    parent has not collected it yet, a zombie, counts as gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return True  # the pid now belongs to someone else's process
        if is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)  # the name, in brackets, may hold spaces
    except OSError:
        return False
    return len(fields) == 2 and fields[1].split()[:1] == ["Z"]
