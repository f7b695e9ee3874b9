"""The listening socket: socket activation or our own bound socket, peer credentials,
and telling the service manager how we are (sd_notify)."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from whisperd.runtime import ensure_private_dir

log = logging.getLogger("whisperd")

BACKLOG = 128


def notify(state: str) -> None:
    """Tell the service manager about our state; a no-op without NOTIFY_SOCKET."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    from systemd import daemon

    daemon.notify(state)


class SocketInUse(Exception):
    pass


@dataclass
class Listener:
    sock: socket.socket
    path: Path | None  # set when we bound it ourselves, so we remove it on exit
    activated: bool
    lock_fd: int | None = None

    def release_own_socket(self) -> None:
        """Take our socket's name away (and its lock): a new client starts a new daemon."""
        if self.path is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self.path = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def activated_socket() -> socket.socket | None:
    """The listening socket passed by systemd (LISTEN_FDS), if any."""
    if not os.environ.get("LISTEN_FDS"):
        return None
    from systemd import daemon

    fds = daemon.listen_fds()
    if not fds:
        return None
    if len(fds) > 1:
        log.warning("%d sockets passed by the service manager; using the first", len(fds))
    return socket.socket(fileno=fds[0])


def open_listener(socket_path: Path) -> Listener:
    """The activated socket when systemd passed one, else our own on ``socket_path``."""
    sock = activated_socket()
    if sock is not None:
        return Listener(sock, None, activated=True)
    return bind_socket(socket_path)


def _live_daemon_answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        # A socket nobody listens on refuses; anything else (a full backlog) is a live one.
        return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()


def bind_socket(path: Path) -> Listener:
    """Bind our own socket (no socket activation): 0600, never over a live daemon."""
    ensure_private_dir(path.parent)  # ours, 0700, not a symlink (whisperd/runtime.py)
    # The lock serialises two daemons started at once (two whisperctl autostarting).
    lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise SocketInUse(f"another whisperd is starting or running on {path}") from None
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            os.close(lock_fd)
            raise SocketInUse(f"{path} exists and is not a socket; remove it")
        if _live_daemon_answers(path):
            os.close(lock_fd)
            raise SocketInUse(f"a live whisperd already answers on {path}")
        log.info("removing stale socket %s", path)
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    return Listener(sock, path, activated=False, lock_fd=lock_fd)


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)
