"""The runtime directory and the socket, checked the way ssh-agent and tmux check theirs.

Audio goes to whatever answers on the socket, and whisperd-keys types whatever comes back.
So another local user must never be able to stand in for the daemon: not by creating the
directory the socket lives in before we do (``/tmp/whisperd-$UID`` when there is no
``$XDG_RUNTIME_DIR``: su, ssh without logind, cron, containers), not by putting a socket or
a symbolic link there, and not by answering on a socket we were pointed at.

- The directory holding the socket must be a real directory (never a symbolic link), owned
  by us, with no access for group or others (0700). It is created that way when absent and
  refused otherwise, never "repaired": a directory someone else could write to may already
  hold their files.
- The socket must be a socket (never a symbolic link) owned by us.
- Before a client sends a byte, the process that listens on the socket must run as our own
  uid (``SO_PEERCRED``). Not even root is accepted: whisperd is a per-user service, and a
  root daemon answering a user's socket is not one that user started.

Standard library only: whisperctl imports this on every call.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

SOCKET_NAME = "whisperd.sock"


class UnsafeRuntime(PermissionError):
    """The runtime directory, the socket or the peer cannot be trusted; one-line message.

    A PermissionError (tmux reports EACCES for the same cases), so code that already
    handles OSError around the socket path (whisperctl doctor) shows it instead of a
    traceback."""


def _own_uid() -> int:
    return os.getuid()


# --- pure checks on stat results (unit-tested on every kind of bad entry) --------------------


def directory_problem(st: os.stat_result, uid: int) -> str | None:
    """Why a directory with this lstat() result is not private to ``uid``; None if it is."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & 0o077:
        return f"has mode {stat.S_IMODE(st.st_mode):04o}: other users can get in (need 0700)"
    return None


def socket_problem(st: os.stat_result, uid: int) -> str | None:
    """Why an entry with this lstat() result is not our socket; None if it is."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISSOCK(st.st_mode):
        return "is not a socket"
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not by you (uid {uid})"
    return None


# --- the directory ----------------------------------------------------------------------------


def fallback_base() -> Path:
    """Where the private directory goes when there is no $XDG_RUNTIME_DIR: $TMPDIR or /tmp."""
    return Path(os.environ.get("TMPDIR") or "/tmp")


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR, or ``$TMPDIR/whisperd-$UID`` where there is none; checked private.

    Raises UnsafeRuntime when the directory exists but is not ours alone.
    """
    value = os.environ.get("XDG_RUNTIME_DIR")
    if value:
        return ensure_private_dir(Path(value), "XDG_RUNTIME_DIR")
    return ensure_private_dir(fallback_base() / f"whisperd-{_own_uid()}")


def default_socket_path() -> Path:
    return runtime_dir() / SOCKET_NAME


def ensure_private_dir(path: Path, what: str = "") -> Path:
    """Create ``path`` as 0700 when absent (its parents as needed); refuse it if it is not
    a real directory owned by us with no group or other access."""
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)  # the umask can only make it stricter
        except FileExistsError:
            pass  # created between our look and our mkdir: checked below like any other
    check_private_dir(path, what)
    return path


def check_private_dir(path: Path, what: str = "") -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafeRuntime(f"cannot use {_name(path, what)}: {exc.strerror}") from None
    problem = directory_problem(st, _own_uid())
    if problem is not None:
        raise UnsafeRuntime(
            f"refusing {_name(path, what)}: it {problem}; another user may have made it to "
            "receive your audio. Remove it, or set XDG_RUNTIME_DIR to a private directory"
        )


def _name(path: Path, what: str) -> str:
    return f"{path} ({what})" if what else str(path)


def check_socket_dir(socket_path: Path) -> None:
    """The directory holding a socket we connect to or bind must be private too (also for
    a --socket path the user chose: a socket in a shared directory can be swapped)."""
    check_private_dir(socket_path.parent)


def check_socket_file(path: Path) -> bool:
    """True when our socket exists at ``path``, False when nothing is there; refuse
    anything else that is there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise UnsafeRuntime(f"cannot use the socket {path}: {exc.strerror}") from None
    problem = socket_problem(st, _own_uid())
    if problem is not None:
        raise UnsafeRuntime(
            f"refusing the socket {path}: it {problem}; another user may have put it there"
        )
    return True


# --- the process behind the socket ------------------------------------------------------------


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """Who listens (or connected) on the other end, as the kernel recorded it."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


def verify_daemon(sock: socket.socket, path: str) -> None:
    """Refuse a connected socket whose listener does not run as our own uid.

    For socket activation the listener is our own systemd user manager, later the daemon it
    started; both run as us.
    """
    try:
        peer = peer_credentials(sock)
    except OSError as exc:
        if exc.errno in (errno.ENOPROTOOPT, errno.EOPNOTSUPP):
            raise UnsafeRuntime(f"cannot learn who listens on {path}: {exc.strerror}") from None
        raise
    uid = _own_uid()
    if peer.uid != uid:
        raise UnsafeRuntime(
            f"refusing the daemon on {path}: its process (pid {peer.pid}) runs as uid "
            f"{peer.uid}, not as you (uid {uid}); nothing was sent to it"
        )
