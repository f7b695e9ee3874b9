"""What whisperd-keys knows about whisperd without starting it (the ``daemon`` and ``model``
fields of a status event; docs/keys.md "Status for bars").

Asking whisperd itself is not an option: under socket activation a connection starts the
daemon (which then loads nothing useful and idles for 10 minutes), and even a running
daemon counts a connection as activity, so a bar polling it would keep it from ever
exiting. So:

- **Running or not.** With a systemd user manager that has ``whisperd.service``:
  ``systemctl --user show whisperd.service`` (ActiveState and MainPID; a question to the
  manager, which never activates anything). Without one (whisperd started in the background
  by a client): whether a socket listens on whisperd's path, read from /proc/net/unix, again
  without touching the socket. Neither available: unknown.
- **Model loaded or not.** Under systemd the idle daemon says so in its status line
  (``StatusText``, read by the same ``systemctl --user show``; whisperd/modelstatus.py),
  which follows ``whisperctl load`` and ``whisperctl unload`` too. While it is busy, or
  without systemd: whisperd loads its model on the first transcription and keeps it until
  it exits or is unloaded, so the model is ``loaded`` once a dictation was answered by the
  daemon process that is still running (same MainPID, or the same listening socket),
  ``unloaded`` when the daemon is not running, and ``unknown`` otherwise (a daemon that
  whisperd-keys has not used yet: a ``whisperctl load`` or a file transcription may have
  loaded it; without systemd an unload is not seen).

``DaemonTracker`` is the pure part (golden-tested); ``probe_daemon`` does the looking, in
well under a second; call it from a thread that may block (e.g. every few seconds while a
follower is connected, and after each dictation).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from whisperd import modelstatus
from whisperd.keys.status import DaemonSeen

UNIT = "whisperd.service"
PROBE_TIMEOUT = 2.0
# systemd ActiveStates in which a whisperd process exists
RUNNING_STATES = frozenset({"active", "activating", "deactivating", "reloading"})
SO_ACCEPTCON = 0x10000  # /proc/net/unix "Flags" of a listening socket


@dataclass(frozen=True)
class Probe:
    """One look at the daemon: whether it runs, and which process it is (``identity``
    changes when it restarts: its MainPID, or the inode of its listening socket)."""

    running: bool
    identity: str = ""
    model_loaded: bool | None = None  # what the daemon's status line says, if anything


class DaemonTracker:
    """Probes and answered dictations in, ``DaemonSeen`` events out. Pure."""

    def __init__(self) -> None:
        self._loaded_in: str | None = None  # identity of the process that answered
        self._last: Probe | None = None

    def observe(self, probe: Probe | None) -> DaemonSeen:
        self._last = probe
        if probe is None:
            return DaemonSeen(running=None, model_loaded=None)
        if not probe.running:
            self._loaded_in = None
            return DaemonSeen(running=False, model_loaded=False)
        if probe.model_loaded is not None:  # the daemon's own word, unloads included
            self._loaded_in = probe.identity if probe.model_loaded else None
            return DaemonSeen(running=True, model_loaded=probe.model_loaded)
        loaded = True if (probe.identity and probe.identity == self._loaded_in) else None
        return DaemonSeen(running=True, model_loaded=loaded)

    def dictation_answered(self, probe: Probe | None) -> DaemonSeen:
        """whisperd returned a dictation's result; ``probe`` is a look taken just after.
        The daemon's own word wins: a remote engine, or a dictation too short or silent
        to need the model, leaves it unloaded."""
        if probe is not None and probe.model_loaded is not None:
            return self.observe(probe)
        if probe is not None and probe.running and probe.identity:
            self._loaded_in = probe.identity
            return DaemonSeen(running=True, model_loaded=True)
        return self.observe(probe)


def parse_systemctl_show(output: str) -> Probe | None:
    """``systemctl --user show -p LoadState,ActiveState,MainPID,StatusText`` output; None
    when the unit is not installed."""
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    if values.get("LoadState") != "loaded":
        return None
    running = values.get("ActiveState", "") in RUNNING_STATES
    pid = values.get("MainPID", "0")
    identity = f"pid:{pid}" if running and pid not in ("", "0") else ""
    loaded = modelstatus.model_loaded(values.get("StatusText", "")) if running else None
    return Probe(running, identity, loaded)


def parse_proc_net_unix(text: str, path: str) -> Probe:
    """Whether a socket listens on ``path``, from /proc/net/unix."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[7] != path:
            continue
        if int(fields[3], 16) & SO_ACCEPTCON:
            return Probe(True, f"inode:{fields[6]}")
    return Probe(False)


def user_manager_running() -> bool:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return bool(runtime) and os.path.exists(os.path.join(runtime or "", "systemd", "private"))


def probe_systemd(unit: str = UNIT, timeout: float = PROBE_TIMEOUT) -> Probe | None:
    if not (user_manager_running() and shutil.which("systemctl")):
        return None
    try:
        done = subprocess.run(
            [
                "systemctl",
                "--user",
                "show",
                unit,
                "--property=LoadState,ActiveState,MainPID,StatusText",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_systemctl_show(done.stdout) if done.returncode == 0 else None


def probe_listener(socket_path: str) -> Probe | None:
    try:
        text = Path("/proc/net/unix").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse_proc_net_unix(text, socket_path)


def probe_daemon(socket_path: str) -> Probe | None:
    """Whether whisperd runs, never starting it; None when there is no way to tell.

    The systemd unit when there is one (its socket always has a listener: the manager);
    else a listener on the socket can only be a whisperd that a client started."""
    from whisperd.config import default_socket_path

    # systemd's unit serves the default socket only (as in whisperd.autostart)
    probe = probe_systemd() if socket_path == str(default_socket_path()) else None
    if probe is not None:
        return probe
    return probe_listener(socket_path)
