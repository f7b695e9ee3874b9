"""The listening sockets: socket activation or our own bound sockets, peer credentials,
and telling the service manager how we are (sd_notify).

The Unix socket of whisperd's own protocol is the one socket always there; the fronts'
sockets (whisperd/fronts: http, wyoming) come beside it, told apart under socket
activation by their FileDescriptorName (LISTEN_FDNAMES), bound from the fronts' ``listen``
settings otherwise."""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
import socket
import stat
import struct
from dataclasses import dataclass, field
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
    # The fronts' listening sockets by front name ("http", "wyoming").
    fronts: dict[str, socket.socket] = field(default_factory=dict)

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

    def close_all(self) -> None:
        """Close every socket (at exit, or when starting failed)."""
        self.release_own_socket()
        self.sock.close()
        for sock in self.fronts.values():
            sock.close()


def activated_sockets() -> list[tuple[str, socket.socket]]:
    """The listening sockets passed by systemd (LISTEN_FDS) with their names
    (LISTEN_FDNAMES: a unit's FileDescriptorName=, by default the socket unit's name;
    "unknown" when the service manager gave none)."""
    if not os.environ.get("LISTEN_FDS"):
        return []
    from systemd import daemon

    named = daemon.listen_fds_with_names()
    return [(name or "unknown", socket.socket(fileno=fd)) for fd, name in sorted(named.items())]


def sort_activated(
    passed: list[tuple[str, socket.socket]], front_names: tuple[str, ...]
) -> tuple[socket.socket | None, dict[str, socket.socket]]:
    """The Unix socket of our own protocol (a socket not named for a front) and the fronts'
    sockets by name. A socket we cannot use is closed, with a warning."""
    main: socket.socket | None = None
    fronts: dict[str, socket.socket] = {}
    for name, sock in passed:
        if name in front_names and name not in fronts:
            fronts[name] = sock
        elif name not in front_names and sock.family == socket.AF_UNIX and main is None:
            main = sock
        else:
            log.warning(
                "ignoring a socket passed by the service manager: %s (named %r)",
                "a second one" if name in fronts or main is not None else "not a Unix socket",
                name,
            )
            sock.close()
    return main, fronts


def open_listener(socket_path: Path, front_listens: dict[str, str] | None = None) -> Listener:
    """The activated sockets when systemd passed some, else our own: the Unix socket on
    ``socket_path`` and one for each front given an address in ``front_listens`` (every
    front's name -> "host:port"; empty = off). Under activation the fronts' addresses are
    not bound: their sockets come from their socket units."""
    listens = {name: where for name, where in (front_listens or {}).items() if where}
    passed = activated_sockets()
    if passed:
        main, fronts = sort_activated(passed, tuple(front_listens or ()))
        for name in sorted(set(listens) - set(fronts)):
            log.warning(
                "%s.listen = %r is not bound under socket activation: enable "
                "whisperd-%s.socket instead (docs/serving.md)",
                name,
                listens[name],
                name,
            )
        if main is None:  # only a front's socket: bind our own Unix socket beside it
            listener = bind_socket(socket_path)
            listener.activated = True
        else:
            listener = Listener(main, None, activated=True)
        listener.fronts = fronts
        return listener
    listener = bind_socket(socket_path)
    try:
        for name, where in sorted(listens.items()):
            listener.fronts[name] = bind_tcp(name, where)
    except BaseException:
        listener.close_all()
        raise
    return listener


class BadAddress(Exception):
    """A front's ``listen`` value that cannot be bound; names the setting."""


def parse_address(where: str) -> tuple[str, int]:
    """ "127.0.0.1:8765", "[::1]:8765", "localhost:8765" or "tcp://..." -> (host, port);
    port 0: any free port (the tests)."""
    text = where.removeprefix("tcp://")
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise BadAddress(f"{where!r} is not host:port (say 127.0.0.1:8765)")
    return host, int(port_text)


def bind_tcp(name: str, where: str) -> socket.socket:
    """Bind and listen on a front's configured TCP address (not socket-activated)."""
    try:
        host, port = parse_address(where)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (BadAddress, socket.gaierror) as exc:
        raise BadAddress(f"{name}.listen: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise BadAddress(f"{name}.listen: cannot listen on {where}: {exc.strerror}") from None
    return sock


def is_loopback(sock: socket.socket) -> bool:
    """Whether a listening socket can only be reached from this machine: a Unix socket, or
    a TCP socket bound to a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104)."""
    if sock.family == socket.AF_UNIX:
        return True
    host = str(sock.getsockname()[0])
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


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
