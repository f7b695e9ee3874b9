"""constraints.txt, the lock that install.sh, CI and the .deb use, is complete and consistent:
every package whisperd[model,keys,serve,dev] pulls in is pinned, every pin satisfies what
pyproject.toml and the other packages ask for, and debian/venv-packages.txt only names
pinned packages. (scripts/lock.sh refreshes the lock.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = {"model", "keys", "serve", "dev"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line!r}"
            found[canonical(name)] = version.strip()
    return found


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in sorted(EXTRAS):
        listed += project["optional-dependencies"][extra]
    return [Requirement(spec) for spec in listed]


def applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in extras | {""})


def test_every_pin_satisfies_pyproject() -> None:
    pinned = pins()
    for req in project_requirements():
        assert canonical(req.name) in pinned, f"{req.name} is not pinned in constraints.txt"
        version = pinned[canonical(req.name)]
        assert req.specifier.contains(version, prereleases=True), f"{req} vs =={version}"


def test_the_installed_closure_is_pinned_and_consistent() -> None:
    """Walk the dependencies of whisperd[model,keys,serve,dev] as installed here: each one is in
    the lock, and the locked version satisfies whoever asks for it."""
    pinned = pins()
    todo = project_requirements()
    seen: set[str] = set()
    problems = []
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if name not in pinned:
            problems.append(f"{req.name} (needed: {req}) is not pinned")
            continue
        if not req.specifier.contains(pinned[name], prereleases=True):
            problems.append(f"{req} is not satisfied by the pin =={pinned[name]}")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name} is not installed in this environment")
            continue
        wanted = set(req.extras)
        todo += [Requirement(spec) for spec in requires if applies(Requirement(spec), wanted)]
    assert not problems, "\n".join(problems)
    assert len(seen) > 30  # the walk reached the whole closure


def test_debian_venv_packages_are_all_pinned() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "debian/pinned.py"),
            str(ROOT / "debian/venv-packages.txt"),
            str(ROOT / "constraints.txt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "faster-whisper==" in done.stdout and "numpy==" in done.stdout
    assert "systemd-python" not in done.stdout and "evdev==" not in done.stdout  # Debian's


def test_pinned_py_refuses_an_unpinned_name(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("numpy\nnot-in-the-lock\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "debian/pinned.py"), str(names), str(ROOT / "constraints.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "not-in-the-lock" in done.stderr
