"""When the clean root runs, and what that spares the host.

The clean root (clean-root.sh) runs the README's test command with `-m "not system"`: every
unit and integration test, in a Debian 12 that never saw this project. Run again on this
host, the same tests would only prove what this machine already had installed, at twice the
time (about 25 min on a loaded 2-core machine). So when the clean root will test exactly
what is checked out, the host leaves those tests to it (``host_suite_left_to_clean_root``).
WHISPERD_HOST_SUITE=1 runs them on the host too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
TOOLS = ("debootstrap", "unshare", "chroot", "git")


def why_clean_root_skips() -> str | None:
    """Why the clean root will not run here (a skip), or None."""
    if os.geteuid() != 0:
        return "needs root: debootstrap, an overlay mount, chroot"
    if os.environ.get("WHISPERD_SKIP_CLEAN_ROOT"):
        return "WHISPERD_SKIP_CLEAN_ROOT is set (the clean root takes 10-30 min)"
    return None


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if not shutil.which(tool)]


# The root runs with a clean environment (env -i): these change what the host's run does
# (update golden files, more fuzz cases), so with any of them set the host runs the tests.
HOST_ONLY_SETTINGS = ("WHISPERD_UPDATE_GOLDEN", "WHISPERD_FUZZ_CASES", "WHISPERD_FUZZ_DAEMON_CASES")


def uncommitted_changes() -> str:
    """What `git status` lists, untracked files included whatever git's configuration
    says: none of it is in the clone that the clean root tests. A failing git counts as
    changes."""
    status = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=normal"],
        capture_output=True,
        text=True,
        check=False,
    )
    if status.returncode != 0:
        return status.stderr.strip() or f"git status exited {status.returncode}"
    return status.stdout.strip()


def host_suite_left_to_clean_root() -> str | None:
    """Why the host may leave the unit and integration tests to the clean root, or None
    when it must run them itself: the clean root would skip or fail before them, it
    tests another commit (WHISPERD_CLEAN_ROOT_REF) or a clone of HEAD that lacks what is
    not committed, or a setting of this run would not reach it."""
    if os.environ.get("WHISPERD_HOST_SUITE"):
        return None
    if os.environ.get("WHISPERD_CLEAN_ROOT_REF"):
        return None
    if any(os.environ.get(name) for name in HOST_ONLY_SETTINGS):
        return None
    if why_clean_root_skips() or missing_tools() or not (REPO / ".git").exists():
        return None
    if uncommitted_changes():
        return None
    return "they run in the clean root (tests/system/test_clean_root.py)"
