"""whisperd under a real `systemd --user` manager on this host (see hostmgr.sh).

The project's own unit files from units/ are installed for a test user unchanged; one drop-in
points ExecStart at this venv's whisperd (exactly what docs/packaging.md tells pip users to do)
and shortens the idle timeout.
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import REPO, SCRIPTS, UNITS, UserManager, test_audio_dir

JFK_WORDS = ["ask", "not", "what", "your", "country", "can", "do", "for", "you"]


def unit_files() -> list[Path]:
    return sorted(p for p in UNITS.iterdir() if p.suffix in (".service", ".socket", ".timer"))


def set_idle(um: UserManager, seconds: float) -> None:
    """(Re)install the units with a drop-in: ExecStart=<venv>/whisperd --idle-timeout N.

    The drop-in also lifts the start rate limit (default: 5 starts in 10 s, after which the
    socket unit fails with service-start-limit-hit): with a test idle timeout of 1 s the
    daemon legitimately exits and is re-activated more often than that. With the real
    idle timeout (600 s) only a crash loop can reach the limit, which is what it is for.
    """
    um.systemctl("stop", "whisperd.service")
    for unit in unit_files():
        um.write_user_file(f".config/systemd/user/{unit.name}", unit.read_text())
    um.write_user_file(
        ".config/systemd/user/whisperd.service.d/50-venv.conf",
        textwrap.dedent(f"""\
            [Unit]
            StartLimitIntervalSec=0
            [Service]
            ExecStart=
            ExecStart={SCRIPTS}/whisperd --idle-timeout {seconds}
            """)
        + temporary_checkout_binds(),
    )
    if (UNITS / "whisperd-keys.service").exists():
        um.write_user_file(
            ".config/systemd/user/whisperd-keys.service.d/50-venv.conf",
            f"[Service]\nExecStart=\nExecStart={SCRIPTS}/whisperd-keys\n",
        )
    um.systemctl("daemon-reload", check=True)
    um.systemctl("reset-failed")
    um.systemctl("enable", "--now", "whisperd.socket", check=True)


def temporary_checkout_binds() -> str:
    """A checkout under /tmp (e.g. a fresh clone there) is hidden by the unit's
    PrivateTmp=yes: bind its venv and source back in, read-only, so the sandbox stays as
    the unit has it. An installed whisperd lives under /usr and needs none of this."""
    paths = {Path(sys.prefix).resolve(), REPO.resolve()}
    hidden = sorted(
        str(p) for p in paths if p.parts[1:2] == ("tmp",) or str(p).startswith("/var/tmp/")
    )
    return "".join(f"BindReadOnlyPaths={p}\n" for p in hidden)


def whisperctl(um: UserManager, *args: str, timeout: float = 300):  # type: ignore[no-untyped-def]
    return um.run(str(SCRIPTS / "whisperctl"), "--no-autostart", *args, timeout=timeout)


def state(um: UserManager) -> dict[str, str]:
    return um.show(
        "whisperd.service",
        "ActiveState",
        "SubState",
        "MainPID",
        "StatusText",
        "Result",
        "ExecMainStatus",
        "ExecMainCode",
        "NRestarts",
        "InvocationID",
    )


def wait_inactive(um: UserManager, timeout: float) -> dict[str, str]:
    return um.wait_for(
        lambda: (s := state(um))["ActiveState"] in ("inactive", "failed") and s,
        timeout,
        "whisperd.service to exit on idle",
        interval=0.2,
    )


@pytest.fixture
def units(user_manager: UserManager) -> UserManager:
    set_idle(user_manager, 600)
    return user_manager


def test_systemd_analyze_verify_every_unit(units: UserManager) -> None:
    """`systemd-analyze --user verify` of every unit in units/ (as installed, with the drop-in).

    --man=no: a pip install has no man pages (the .deb ships them; the VM test checks them).
    """
    files = unit_files()
    assert any(f.name == "whisperd.service" for f in files)
    installed = [str(units.unit_dir / f.name) for f in files]
    done = units.run("systemd-analyze", "--user", "verify", "--man=no", *installed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_socket_activation_ready_and_status(units: UserManager) -> None:
    assert units.systemctl("is-active", "whisperd.socket").stdout.strip() == "active"
    assert state(units)["ActiveState"] == "inactive", "the daemon must not run before a client"
    sock = units.runtime_dir / "whisperd.sock"
    assert sock.is_socket()
    assert oct(sock.stat().st_mode & 0o777) == "0o600"

    done = whisperctl(units, "ping")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pong" in done.stdout

    # Type=notify: "active (running)" only after READY=1; STATUS= is the manager's StatusText
    s = state(units)
    assert (s["ActiveState"], s["SubState"]) == ("active", "running"), s
    assert s["StatusText"], "the daemon sent no STATUS="
    status = whisperctl(units, "status")
    assert status.returncode == 0, status.stderr
    assert "socket-activated" in status.stdout
    assert f"(pid {s['MainPID']})" in status.stdout
    journal = units.journal()
    assert "listening (socket activation)" in journal, journal


def test_idle_exit_status_0_and_reactivation(user_manager: UserManager) -> None:
    um = user_manager
    set_idle(um, 2)
    assert whisperctl(um, "ping").returncode == 0
    first = state(um)
    assert first["ActiveState"] == "active"
    t0 = time.monotonic()
    after = wait_inactive(um, 30)
    took = time.monotonic() - t0
    assert after["Result"] == "success", after
    assert after["ExecMainStatus"] == "0", after
    assert 1.0 <= took <= 15, f"idle exit after {took:.1f} s with --idle-timeout 2"
    # the socket stays with the manager and activates the next daemon
    assert um.systemctl("is-active", "whisperd.socket").stdout.strip() == "active"
    assert whisperctl(um, "ping").returncode == 0
    second = state(um)
    assert second["ActiveState"] == "active"
    assert second["MainPID"] != first["MainPID"]
    assert second["InvocationID"] != first["InvocationID"]
    assert second["NRestarts"] == "0"
    journal = um.journal()
    assert re.search(r"idle for \d+ s .*exiting", journal), journal
    assert journal.count("listening (socket activation)") >= 2


HAMMER = r"""
import json, random, sys, threading, time
from whisperd.client import Client
duration, idle = float(sys.argv[1]), float(sys.argv[2])
lock = threading.Lock(); ok = 0; errors = []; pids = set()
def one():
    global ok
    try:
        with Client.connect(autostart=False, timeout=60, connect_timeout=60) as c:
            pid = c.status()["pid"]
        with lock:
            ok += 1; pids.add(pid)
    except Exception as exc:  # every failure is a lost connection
        with lock:
            errors.append(f"{type(exc).__name__}: {exc}")
random.seed(4)
end = time.monotonic() + duration
while time.monotonic() < end:
    threads = [threading.Thread(target=one) for _ in range(random.randint(1, 4))]
    for i, t in enumerate(threads):
        t.start(); time.sleep(random.uniform(0, 0.01))
    for t in threads:
        t.join()
    # pause right around the idle deadline so that clients arrive while the daemon decides to exit
    time.sleep(idle + random.uniform(-0.15, 0.15))
print(json.dumps({"ok": ok, "errors": errors, "pids": sorted(pids)}))
"""


def test_no_connection_lost_at_the_idle_deadline(user_manager: UserManager) -> None:
    """Clients hammer the socket right at the idle deadline: every one is served."""
    import json

    um = user_manager
    set_idle(um, 1)
    script = um.write_user_file("hammer.py", HAMMER)
    done = um.run(str(SCRIPTS / "python"), str(script), "25", "1", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == [], (
        result,
        um.journal()[-4000:],
        um.systemctl("status", "whisperd.socket").stdout,
    )
    assert result["ok"] >= 20, result
    # the daemon really did exit and come back during the run
    assert len(result["pids"]) >= 3, result
    journal = um.journal()
    assert journal.count("exiting, which releases") >= 2, journal[-3000:]


def test_transcription_and_journal(user_manager: UserManager, tmp_path: Path) -> None:
    """A real transcription with the bundled model; the journal has load, timings and idle exit."""
    um = user_manager
    audio = test_audio_dir() / "jfk.flac"
    if not audio.exists():
        pytest.skip(f"test audio {audio} is absent (set WHISPERD_TEST_AUDIO)")
    copy = um.home / "jfk.flac"
    shutil.copy(audio, copy)
    shutil.chown(copy, um.uid)
    set_idle(um, 3)
    done = whisperctl(um, "transcribe", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    text = re.sub(r"[^a-z ]", " ", done.stdout.lower())
    missing = [w for w in JFK_WORDS if w not in text.split()]
    assert not missing, f"transcript {done.stdout!r} lacks {missing}"
    wait_inactive(um, 60)
    journal = um.journal("whisperd.service", "--since", "-5min")
    assert re.search(r"model loaded in [\d.]+ s", journal), journal
    assert re.search(r"request .*: audio [\d.]+ s, queue [\d.]+ s, .*decode [\d.]+ s", journal), (
        journal
    )
    assert re.search(r"idle for 3 s with no connection; exiting", journal), journal
    # the daemon logs timings, never the text
    assert "fellow Americans" not in journal


def test_sandbox_in_effect(units: UserManager) -> None:
    """The hardening of units/whisperd.service really applies under the user manager."""
    assert whisperctl(units, "ping").returncode == 0
    pid = state(units)["MainPID"]
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    assert re.search(r"^Seccomp:\s+2$", status, re.M), status
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    assert re.search(r"^CapBnd:\s+0+$", status, re.M), status
    uid_map = Path(f"/proc/{pid}/uid_map").read_text().splitlines()
    assert len(uid_map) == 1 and uid_map[0].split()[:2] == [str(units.uid)] * 2, uid_map
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    root = [m for m in mounts if m.split()[4] == "/"]
    assert root and all(" ro," in m or m.split()[5].startswith("ro") for m in root[-1:]), root
    score = units.run("systemd-analyze", "--user", "security", "whisperd.service", "--no-pager")
    m = re.search(r"Overall exposure level for whisperd.service: ([\d.]+)", score.stdout)
    assert m, score.stdout + score.stderr
    assert float(m.group(1)) <= 3.5, f"exposure {m.group(1)} (docs/hardening.md says 3.0)"
