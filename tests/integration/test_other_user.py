"""Another local user tries to stand in for the victim's whisperd (issue 11, item 2).

The attacker is a real process of another uid (``setpriv --reuid``), written with the
standard library only: it accepts connections and counts every byte a client sends. The
victim runs the real whisperctl, whisperd and whisperd-keys' client. Without
$XDG_RUNTIME_DIR the fallback directory is ``$TMPDIR/whisperd-$UID``; TMPDIR points at a
sticky, world-writable directory of this test, standing in for /tmp.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import shared_audio

ATTACKER_UID = 65534  # nobody: a real other uid, no account needed

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv to run the attacker as another uid",
)

# The attacker: listen on a path (creating its directory world-open first, as an attacker
# would) or on an inherited, already-bound descriptor; count the bytes of every client.
ATTACKER = r"""
import os, socket, sys
where = sys.argv[1]
if where.startswith("fd:"):
    server = socket.socket(fileno=int(where[3:]))
else:
    os.makedirs(os.path.dirname(where), exist_ok=True)
    os.chmod(os.path.dirname(where), 0o777)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(where)
    os.chmod(where, 0o777)
server.listen(8)
print("listening", flush=True)
server.settimeout(60)
while True:
    conn, _ = server.accept()
    conn.settimeout(1)
    got = 0
    try:
        while chunk := conn.recv(65536):
            got += len(chunk)
    except (TimeoutError, OSError):
        pass
    conn.close()
    print(f"received {got}", flush=True)
"""


class Attacker:
    def __init__(self, where: str, pass_fds: tuple[int, ...] = ()) -> None:
        self.process = subprocess.Popen(
            [
                "setpriv",
                f"--reuid={ATTACKER_UID}",
                f"--regid={ATTACKER_UID}",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                ATTACKER,
                where,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=pass_fds,
            cwd="/",
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "listening", line + self.process.stderr.read()  # type: ignore[union-attr]

    def stop(self) -> list[int]:
        """Byte counts of every connection it got."""
        time.sleep(1.5)  # lets it finish counting a connection the victim just closed
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return [int(line.split()[1]) for line in out.splitlines() if line.startswith("received")]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A stand-in for /tmp that the attacker can reach: sticky and world-writable."""
    base = Path(tempfile.mkdtemp(prefix="whisperd-trust-"))
    base.chmod(0o1777)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def victim_env(shared_tmp: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "WHISPERD_SOCKET")}
    env.update(TMPDIR=str(shared_tmp), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    return env


def whisperctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "--timeout", "5", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_precreated_fallback_directory_gets_no_audio(shared_tmp: Path, tmp_path: Path) -> None:
    """The attack of the issue: the attacker creates /tmp/whisperd-$VICTIM with its own
    socket in it before the victim's first whisperctl call."""
    victim_dir = shared_tmp / f"whisperd-{os.getuid()}"
    attacker = Attacker(str(victim_dir / "whisperd.sock"))
    env = victim_env(shared_tmp, tmp_path)
    try:
        done = whisperctl(env, "transcribe", str(shared_audio("jfk.flac")))
        autostart = whisperctl(env, "ping")  # no socket answering would mean: start one
    finally:
        received = attacker.stop()
    assert received == [], f"the attacker received {received} bytes"
    for run in (done, autostart):
        assert run.returncode == 3, run.stdout + run.stderr
        assert run.stdout == ""
        message = run.stderr.strip()
        assert "\n" not in message and "Traceback" not in message, message
        assert f"refusing {victim_dir}" in message, message
        assert f"owned by uid {ATTACKER_UID}" in message, message
    assert not (victim_dir / "whisperd.log").exists()  # no daemon was spawned into it


def test_daemon_refuses_to_bind_in_a_directory_of_another_user(
    shared_tmp: Path, tmp_path: Path
) -> None:
    victim_dir = shared_tmp / f"whisperd-{os.getuid()}"
    attacker = Attacker(str(victim_dir / "whisperd.sock"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "whisperd.server", "--idle-timeout", "5"],
            env=victim_env(shared_tmp, tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        received = attacker.stop()
    assert received == []
    assert done.returncode == 1, done.stderr
    assert f"refusing {victim_dir}" in done.stderr and "Traceback" not in done.stderr
    assert os.lstat(victim_dir).st_uid == ATTACKER_UID  # left as it was, not taken over


def impostor_on_victims_socket(tmp_path: Path) -> tuple[Path, Attacker]:
    """The victim's own private directory and socket file, but listen() runs as the
    attacker: only the peer credentials tell them apart."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    path = runtime / "whisperd.sock"
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    try:
        attacker = Attacker(f"fd:{server.fileno()}", pass_fds=(server.fileno(),))
    finally:
        server.close()
    return path, attacker


def test_client_checks_the_daemons_uid_before_sending(tmp_path: Path) -> None:
    path, attacker = impostor_on_victims_socket(tmp_path)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    try:
        done = whisperctl(env, "--socket", str(path), "transcribe", str(shared_audio("jfk.flac")))
    finally:
        received = attacker.stop()
    assert done.returncode == 3, done.stdout + done.stderr
    assert received == [0], f"the attacker received {received} bytes"
    message = done.stderr.strip()
    assert f"runs as uid {ATTACKER_UID}, not as you" in message, message
    assert "\n" not in message and "Traceback" not in message


def test_whisperd_keys_refuses_the_impostor_too(tmp_path: Path) -> None:
    """whisperd-keys connects through the same client: nothing recorded goes out, and
    nothing comes back to be typed."""
    from whisperd.client import UntrustedDaemon
    from whisperd.keys.app import client_factory
    from whisperd.keys.config import KeysConfig

    path, attacker = impostor_on_victims_socket(tmp_path)
    try:
        with pytest.raises(UntrustedDaemon, match=f"runs as uid {ATTACKER_UID}"):
            client_factory(KeysConfig(socket_path=str(path)))
    finally:
        received = attacker.stop()
    assert received == [0]
