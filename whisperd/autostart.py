"""Reaching the daemon: connect to its socket, and start it when nothing answers —
through the systemd user manager when one is there, else by spawning ``whisperd`` in the
background, whose exit (say for a bad configuration) is noticed at once and explained.

Standard library only: whisperctl imports this on every run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from whisperd.clienterrors import ClientError, DaemonConfigError, DaemonUnavailable
from whisperd.runtime import check_socket_dir, check_socket_file, verify_daemon


def _try_connect(path: str, timeout: float) -> socket.socket | None:
    """A connection to our own daemon on ``path``; None when nothing listens there.

    Raises UnsafeRuntime, before a byte is sent, when the socket or the process listening
    on it belongs to someone else.
    """
    if not check_socket_file(Path(path)):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        verify_daemon(sock, path)
        return sock
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise


def _systemd_can_activate(path: str) -> bool:
    """Start whisperd.socket through the user manager, if there is one and it owns ``path``."""
    from whisperd.config import default_socket_path

    if path != str(default_socket_path()) or not shutil.which("systemctl"):
        return False
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.exists(os.path.join(runtime, "systemd", "private")):
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "start", "whisperd.socket"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and os.path.exists(path)


class Spawned:
    """A whisperd we started in the background, and where its own messages go."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, log_start: int) -> None:
        self.process = process
        self.log_path = log_path
        self.log_start = log_start

    def last_words(self) -> str:
        """The last line the daemon wrote before it exited: its own error message."""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self.log_start)
                tail = log_file.read()[-4096:].decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def failure(self) -> ClientError:
        status = self.process.returncode
        said = self.last_words() or f"whisperd exited with status {status}"
        if status == 2:  # whisperd.server: a configuration error
            return DaemonConfigError("config", said)
        return DaemonUnavailable(
            "unavailable", f"whisperd exited at start ({said}); see {self.log_path}"
        )


def spawn_daemon(path: str, config: str | None = None) -> Spawned:
    """Start whisperd in the background (no systemd): same idle exit, logs to a file."""
    log_path = Path(path).with_name("whisperd.log")
    command = [sys.executable, "-m", "whisperd.server", "--socket", path]
    if config:
        command += ["--config", os.path.abspath(config)]
    with open(log_path, "ab") as log_file:
        log_start = log_file.tell()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # survives our exit and our terminal's signals
            close_fds=True,
        )
    return Spawned(process, log_path, log_start)


def connect_socket(
    path: str, connect_timeout: float, autostart: bool, config: str | None = None
) -> socket.socket:
    check_socket_dir(Path(path))
    sock = _try_connect(path, connect_timeout)
    if sock is not None:
        return sock
    if not autostart:
        raise DaemonUnavailable(
            "unavailable", f"whisperd is not running (nothing listens on {path})"
        )
    spawned = None if _systemd_can_activate(path) else spawn_daemon(path, config)
    deadline = time.monotonic() + connect_timeout
    while time.monotonic() < deadline:
        # Checked before the socket: a daemon that lost a start race to another one
        # exits, yet the socket then answers.
        exited = spawned is not None and spawned.process.poll() is not None
        sock = _try_connect(path, connect_timeout)
        if sock is not None:
            return sock
        if exited:
            assert spawned is not None
            raise spawned.failure()
        time.sleep(0.02)
    raise DaemonUnavailable(
        "unavailable",
        f"whisperd did not start within {connect_timeout:.0f} s (socket {path}); "
        f"see {Path(path).with_name('whisperd.log')} or `journalctl --user -u whisperd`",
    )
