"""tests/system/setup.sh on a machine that has never heard of the packages it needs.

dpkg-query fails ("no packages found matching ...") for a package dpkg never knew; under
`set -euo pipefail` that killed the script before it installed anything (issue 10: `bash
scripts/test.sh` exited 1 after 0.01 s, printing nothing). Here dpkg-query and apt-get are
stand-ins on PATH, so the script's own logic runs without touching the system; the real
thing on a bare Debian is tests/system/test_clean_root.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_DPKG_QUERY = """#!/bin/sh
# usage: dpkg-query -W -f=FORMAT PACKAGE: only the packages listed in $KNOWN are installed
pkg=$(eval echo \\${$#})
for known in $KNOWN; do
  if [ "$known" = "$pkg" ]; then printf 'install ok installed'; exit 0; fi
done
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
"""
FAKE_APT_GET = """#!/bin/sh
echo "$*" >> "$APT_LOG"
"""


def run_setup(tmp_path: Path, known: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("apt-get", FAKE_APT_GET)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "apt.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "KNOWN": known,
        "APT_LOG": str(log),
        "WHISPERD_SYSTEST_CACHE": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "tests/system/setup.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return done, log.read_text() if log.exists() else ""


def test_setup_installs_packages_dpkg_never_knew(tmp_path: Path) -> None:
    done, apt = run_setup(tmp_path, known="systemd sox")
    assert done.returncode == 0, done.stdout + done.stderr
    install = [line for line in apt.splitlines() if line.split()[:1] == ["install"]]
    assert len(install) == 1, apt
    wanted = install[0].split()
    assert "debootstrap" in wanted and "lintian" in wanted and "qemu-system-x86" in wanted
    assert "systemd" not in wanted and "sox" not in wanted  # already installed
    assert "installing" in done.stdout  # it says what it does


def test_setup_with_everything_installed_installs_nothing(tmp_path: Path) -> None:
    packages = (ROOT / "tests/system/setup.sh").read_text()
    names = packages.split("PKGS=(", 1)[1].split(")", 1)[0].split()
    done, apt = run_setup(tmp_path, known=" ".join(names))
    assert done.returncode == 0, done.stdout + done.stderr
    assert apt == ""
    assert "already installed" in done.stdout
