"""Harness of the system tests: a real `systemd --user` manager on this host (hostmgr.sh) and
a Debian 12 VM under QEMU (vm/). Everything here is marked `system`.

These tests need root (a test user, a delegated cgroup, a private mount namespace) and the
tools that tests/system/setup.sh installs. When something is missing they fail with the
reason under CI (CI=true) and skip with the reason elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HOSTMGR = HERE / "hostmgr.sh"
SCRIPTS = Path(sysconfig.get_path("scripts"))
UNITS = REPO / "units"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.system)


# Lines for the end of pytest's output (the VM's @@ lines: the typed text, timings, results).
SUMMARY_LINES: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if SUMMARY_LINES:
        terminalreporter.section("whisperd system tests")
        for line in SUMMARY_LINES:
            terminalreporter.write_line(line)


def unavailable(reason: str) -> None:
    """Skip with the reason; under CI, where setup.sh has run, fail instead."""
    if os.environ.get("CI") and not os.environ.get("WHISPERD_SYSTEST_ALLOW_SKIP"):
        pytest.fail(f"system test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def need_host_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: it creates a test user, a delegated cgroup and a mount namespace")
    missing = [
        t
        for t in ("/lib/systemd/systemd", "/lib/systemd/systemd-journald")
        if not os.path.exists(t)
    ]
    missing += [
        t
        for t in (
            "systemctl",
            "journalctl",
            "systemd-analyze",
            "unshare",
            "nsenter",
            "setpriv",
            "setfacl",
        )
        if not shutil.which(t)
    ]
    if missing:
        unavailable(f"missing {', '.join(missing)}: run tests/system/setup.sh")
    if not (SCRIPTS / "whisperd").exists():
        unavailable(f"no whisperd entry point in {SCRIPTS}: pip install -e . in this venv")


def test_audio_dir() -> Path:
    return Path(os.environ.get("WHISPERD_TEST_AUDIO", REPO.parent / "shared" / "audio"))


test_audio_dir.__test__ = False  # type: ignore[attr-defined]


class UserManager:
    """A running `systemd --user` of the test user, in its own mount namespace."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.info: dict[str, str] = {}

    # -- lifecycle
    def start(self) -> None:
        paths = " ".join(
            str(p)
            for p in {
                Path(sys.executable).resolve(),
                Path(sys.base_prefix).resolve(),
                Path(sys.prefix).resolve(),
                SCRIPTS.resolve(),
                REPO,
            }
        )
        env = dict(os.environ, WHISPERD_SYSTEST_PATHS=paths)
        done = subprocess.run(
            [str(HOSTMGR), "start", str(self.state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            pytest.fail(f"user manager did not start:\n{done.stdout}\n{done.stderr}")
        self.info = dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)

    def stop(self) -> None:
        subprocess.run([str(HOSTMGR), "stop", str(self.state)], timeout=60, check=False)

    @property
    def uid(self) -> int:
        return int(self.info["UID"])

    @property
    def home(self) -> Path:
        return Path(self.info["HOME"])

    @property
    def runtime_dir(self) -> Path:
        return Path(f"/run/user/{self.uid}")

    @property
    def unit_dir(self) -> Path:
        return self.home / ".config/systemd/user"

    # -- commands
    def run(
        self, *cmd: str, timeout: float = 120, check: bool = False, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the test user, inside the manager's mount namespace."""
        done = subprocess.run(
            [str(HOSTMGR), "user", str(self.state), *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", "--no-pager", *args, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, "-p", ",".join(props), check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str = "whisperd.service", *extra: str) -> str:
        return self.run(
            "journalctl", "--user", "-u", unit, "--no-pager", "-o", "cat", *extra
        ).stdout

    def write_user_file(self, rel: str, text: str) -> Path:
        path = self.home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        uid, gid = self.uid, os.stat(self.home).st_gid
        p = path
        while p != self.home:
            os.chown(p, uid, gid)
            p = p.parent
        return path

    def wait_for(self, predicate, timeout: float, what: str, interval: float = 0.1):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(interval)


@pytest.fixture(scope="session")
def user_manager() -> UserManager:
    need_host_tools()
    state = Path(tempfile.mkdtemp(prefix="whisperd-hostmgr."))
    os.chmod(state, 0o755)
    manager = UserManager(state)
    manager.start()
    try:
        yield manager
    finally:
        manager.stop()
        shutil.rmtree(state, ignore_errors=True)
