"""The README's commands on a Debian 12 that has never seen this project (clean-root.sh).

A bare debootstrap root (no Python, no compiler, none of our packages) gets a `git clone` of
this repository's HEAD with the test audio beside it; inside it `bash scripts/install.sh`
runs, then `bash scripts/test.sh -m "not system"` (tests/system/setup.sh, lint, types, the
unit and integration tests). Any step that install.sh or setup.sh leaves out fails here,
whatever this machine happens to have installed. docs/system-tests.md has the timings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .cleanroot import missing_tools, uncommitted_changes, why_clean_root_skips
from .conftest import HERE, REPO, SUMMARY_LINES, unavailable

CACHE = Path(os.environ.get("WHISPERD_SYSTEST_CACHE", "/var/cache/whisperd-systest"))
STEPS = ["debootstrap", "clone", "install", "test"]
# From nothing on a loaded 2-core machine: debootstrap ~1 min, install.sh ~3-5 min, the
# unit and integration tests ~10-15 min. Generous, so a slow machine fails only on a hang.
TIMEOUT_SECONDS = 3600


@dataclass
class CleanRootRun:
    log: str
    steps: dict[str, tuple[int, int]]  # name -> (seconds, exit status)


@pytest.fixture(scope="session")
def clean_root() -> CleanRootRun:
    skip = why_clean_root_skips()
    if skip:
        pytest.skip(skip)
    missing = missing_tools()
    if missing:
        unavailable(f"missing {', '.join(missing)}: run tests/system/setup.sh")
    if not (REPO / ".git").exists():
        unavailable(f"{REPO} is not a git clone: the clean root tests a clone of HEAD")
    dirty = uncommitted_changes()
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="clean-root.", dir=CACHE))
    log_path = CACHE / "last-clean-root.log"
    # A new file, not the old one truncated: a root of an interrupted run whose processes
    # still write to the old file (seen once) cannot then mix its lines into this log.
    log_path.unlink(missing_ok=True)
    try:
        with open(log_path, "w") as log_file:
            subprocess.run(
                [str(HERE / "clean-root.sh"), str(work)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log = log_path.read_text(errors="replace")
    steps = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^@@STEP (\S+) (\d+) (\d+)$", log, re.M)
    }
    SUMMARY_LINES.append(
        f"clean root: {log_path}; seconds: "
        + ", ".join(f"{name}={seconds}" for name, (seconds, _) in steps.items())
        + (" (uncommitted or untracked changes are not in the clone)" if dirty else "")
    )
    summary = re.findall(r"^=+ .*(?:passed|failed|error).* in [\d.]+s.*$", log, re.M)
    SUMMARY_LINES.extend(f"  {line}" for line in summary[-1:])
    # The unit and integration tests run there only: what they skipped is shown here.
    skipped = re.findall(r"^SKIPPED .*$", log, re.M)
    SUMMARY_LINES.extend(f"  in the clean root: {line}" for line in skipped)
    return CleanRootRun(log, steps)


@pytest.mark.parametrize("step", STEPS)
def test_clean_root(clean_root: CleanRootRun, step: str) -> None:
    if step not in clean_root.steps:
        tail = "\n".join(clean_root.log.splitlines()[-80:])
        pytest.fail(f"step {step} did not run in the clean root\n--- log tail:\n{tail}")
    seconds, status = clean_root.steps[step]
    if status != 0:
        section = clean_root.log.split(f"==== {step}:")[-1]
        tail = "\n".join(section.splitlines()[-120:])
        # The unit and integration tests run there only (cleanroot.py): name each failure.
        failed = re.findall(r"^(?:FAILED|ERROR) .*$", section, re.M)
        named = "".join(f"in the clean root: {line}\n" for line in failed)
        pytest.fail(f"{named}{step} exited {status} after {seconds} s in the clean root:\n{tail}")
