"""``whisperctl stop``: end the running whisperd, so that the next request starts a new
one (with the configuration as it is now: whisperd reads it once, at start).

- Under systemd (the default socket, ``whisperd.service`` installed): ``systemctl --user
  stop whisperd.service`` when it runs. Connecting to the socket would *start* it.
- Otherwise (whisperd started by a client): whisperd says its process id in its status,
  and the kernel says which process listens on the socket (SO_PEERCRED); only when they
  are the same process is it sent SIGTERM (a socket forwarded from another machine or a
  container answers with a pid that means nothing here). whisperd handles SIGTERM as a
  service manager's stop: clients in the middle of a request are told
  ``shutting_down``, the process exits with status 0.

Standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from whisperd.client import EXIT_OK, EXIT_REQUEST_FAILED, Client, DaemonUnavailable
from whisperd.runtime import peer_credentials

if TYPE_CHECKING:
    from whisperd.keys.daemonstate import Probe

EXIT_WAIT = 15.0  # seconds to wait for the process to be gone
NOT_RUNNING = "whisperd is not running"
STOPPED = "whisperd stopped; the next request starts it again"


def stop(socket: str, timeout: float, connect_timeout: float) -> int:
    unit = systemd_probe(socket)
    if unit is not None:
        return stop_unit(unit)
    try:
        client = Client.connect(
            socket, timeout=timeout, autostart=False, connect_timeout=connect_timeout
        )
    except DaemonUnavailable as exc:
        if exc.code != "unavailable":  # busy, refused, untrusted: main says why
            raise
        print(NOT_RUNNING)
        return EXIT_OK
    with client:
        pid = client.status().get("pid")
        listener = peer_credentials(client.sock).pid
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or pid != listener:
            print(
                f"whisperctl: not stopping: the process listening on {socket} (pid "
                f"{listener}) is not the whisperd that answered (pid {pid!r}); a socket "
                "forwarded from elsewhere?",
                file=sys.stderr,
            )
            return EXIT_REQUEST_FAILED
        # Sent while connected: an open connection keeps whisperd from its idle exit,
        # so the pid cannot have gone to another process meanwhile.
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, EXIT_WAIT):
        print(f"whisperctl: whisperd (pid {pid}) is still stopping", file=sys.stderr)
        return EXIT_REQUEST_FAILED
    print(STOPPED)
    return EXIT_OK


def systemd_probe(socket: str) -> Probe | None:
    """What systemd says of whisperd.service when ``socket`` is the one its units serve
    and the unit is installed; None: systemd does not manage this whisperd."""
    from whisperd.config import default_socket_path
    from whisperd.keys.daemonstate import probe_systemd

    return probe_systemd() if socket == str(default_socket_path()) else None


def stop_unit(probe: Probe) -> int:
    from whisperd.keys.daemonstate import UNIT

    if not probe.running:
        print(NOT_RUNNING)
        return EXIT_OK
    done = subprocess.run(
        ["systemctl", "--user", "stop", UNIT],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_WAIT + 10,
        check=False,
    )
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        said = why[0] if why else f"exit status {done.returncode}"
        print(f"whisperctl: systemctl --user stop {UNIT}: {said}", file=sys.stderr)
        return EXIT_REQUEST_FAILED
    print(STOPPED)
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
