"""whisperd.runtime: the runtime directory, the socket and the daemon's uid are ours, or refused.

The bad cases are real file-system entries (as root: owned by another uid with os.chown) and a
real listener whose listen() ran under another uid, not mocked stat results.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from whisperd import config, runtime
from whisperd.client import EXIT_UNAVAILABLE, Client, UntrustedDaemon
from whisperd.runtime import UnsafeRuntime

OTHER_UID = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another uid")


@pytest.fixture
def no_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No XDG_RUNTIME_DIR; TMPDIR is a private stand-in for /tmp."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    base = tmp_path / "tmp"
    base.mkdir()
    base.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(base))
    return base


def refusal(path: Path) -> str:
    with pytest.raises(UnsafeRuntime) as caught:
        runtime.ensure_private_dir(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    return message


# --- the directory -----------------------------------------------------------------------


def test_fallback_is_created_private_even_with_a_loose_umask(no_xdg: Path) -> None:
    old = os.umask(0)
    try:
        path = runtime.runtime_dir()
    finally:
        os.umask(old)
    assert path == no_xdg / f"whisperd-{os.getuid()}"
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.getuid()
    assert runtime.runtime_dir() == path  # a second call accepts what the first made


def test_config_runtime_dir_delegates_to_the_checks(no_xdg: Path) -> None:
    victim = no_xdg / f"whisperd-{os.getuid()}"
    victim.mkdir(mode=0o777)
    victim.chmod(0o777)
    with pytest.raises(UnsafeRuntime, match="has mode 0777"):
        config.runtime_dir()
    with pytest.raises(UnsafeRuntime):
        config.default_socket_path()


@needs_root
def test_a_directory_another_user_created_is_refused(no_xdg: Path) -> None:
    victim = no_xdg / f"whisperd-{os.getuid()}"
    victim.mkdir(mode=0o700)
    os.chown(victim, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeRuntime, match=f"owned by uid {OTHER_UID}, not by you"):
        runtime.runtime_dir()
    assert os.lstat(victim).st_uid == OTHER_UID  # refused, not taken over or changed


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o710, 0o701, 0o777, 0o1777])
def test_group_or_other_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "run"
    path.mkdir()
    path.chmod(mode)
    assert f"has mode {mode:04o}" in refusal(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == mode  # never "repaired"


def test_a_symlink_to_a_private_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(real)
    assert "is a symbolic link" in refusal(link)


def test_a_dangling_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "run"
    link.symlink_to(target)
    assert "is a symbolic link" in refusal(link)
    assert not target.exists()  # mkdir did not follow the link


def test_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.write_text("")
    assert "is not a directory" in refusal(path)


def test_xdg_runtime_dir_is_checked_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    with pytest.raises(UnsafeRuntime, match=r"XDG_RUNTIME_DIR.*has mode 0755"):
        runtime.runtime_dir()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(private))
    assert runtime.default_socket_path() == private / "whisperd.sock"


# --- the socket file -------------------------------------------------------------------


@pytest.fixture
def private(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


def bound(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_socket_file_absent_ours_and_not_a_socket(private: Path) -> None:
    path = private / "whisperd.sock"
    assert runtime.check_socket_file(path) is False
    with bound(path):
        assert runtime.check_socket_file(path) is True
    path.unlink()
    path.write_text("")
    with pytest.raises(UnsafeRuntime, match="is not a socket"):
        runtime.check_socket_file(path)


def test_a_symlink_to_a_socket_is_refused(private: Path, tmp_path: Path) -> None:
    with bound(tmp_path / "real.sock"):
        (private / "whisperd.sock").symlink_to(tmp_path / "real.sock")
        with pytest.raises(UnsafeRuntime, match="is a symbolic link"):
            runtime.check_socket_file(private / "whisperd.sock")


@needs_root
def test_a_socket_owned_by_another_user_is_refused(private: Path) -> None:
    path = private / "whisperd.sock"
    with bound(path):
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
        with pytest.raises(UnsafeRuntime, match=f"owned by uid {OTHER_UID}"):
            runtime.check_socket_file(path)


# --- the process behind the socket ----------------------------------------------------------


class Impostor:
    """A listener whose listen() ran as another uid: forked, setuid, then listening.

    It reports through a pipe how many bytes every client sent it.
    """

    def __init__(self, path: Path, uid: int) -> None:
        self.path = path
        server = bound(path)  # bound by us in our private directory: the file is ours
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child reports through the pipe
            os.close(read_end)
            self._serve(server, uid, write_end)
        os.close(write_end)
        server.close()
        self.report = read_end
        # wait until it listens (it writes one byte once listen() returned)
        assert os.read(self.report, 1) == b"L"

    @staticmethod
    def _serve(server: socket.socket, uid: int, report: int) -> None:
        code = 0
        try:
            os.setgid(uid)
            os.setuid(uid)
            server.listen(4)
            os.write(report, b"L")
            server.settimeout(20)
            conn, _ = server.accept()
            conn.settimeout(2)
            received = 0
            try:
                while chunk := conn.recv(65536):
                    received += len(chunk)
            except TimeoutError:
                pass
            os.write(report, f"{received}\n".encode())
        except BaseException:  # noqa: BLE001 - a forked child must never return into pytest
            code = 1
        finally:
            os._exit(code)

    def received(self) -> str:
        _, status = os.waitpid(self.pid, 0)
        data = os.read(self.report, 100).decode()
        os.close(self.report)
        assert os.waitstatus_to_exitcode(status) == 0, data
        return data.strip()


@pytest.fixture
def impostor(private: Path) -> Iterator[Impostor]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a listener as another uid")
    running = Impostor(private / "whisperd.sock", OTHER_UID)
    yield running


def test_peer_credentials_of_our_own_listener(private: Path) -> None:
    path = private / "whisperd.sock"
    with bound(path) as server:
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
            peer = runtime.peer_credentials(client)
            assert (peer.pid, peer.uid) == (os.getpid(), os.getuid())
            runtime.verify_daemon(client, str(path))  # ours: accepted


def test_the_client_refuses_a_daemon_of_another_uid_before_sending(impostor: Impostor) -> None:
    with pytest.raises(UntrustedDaemon) as caught:
        Client.connect(str(impostor.path), timeout=5, autostart=False, connect_timeout=5)
    error = caught.value
    assert error.exit_code == EXIT_UNAVAILABLE == 3
    assert f"runs as uid {OTHER_UID}, not as you" in error.message
    assert "\n" not in error.message
    # the connection was closed without a byte: the impostor read EOF
    assert impostor.received() == "0"
