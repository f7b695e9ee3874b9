"""``whisperctl doctor``: what whisperd and whisperd-keys need, what is missing, how to fix it.

Import-light on purpose (stdlib only at import time): heavy or optional modules (evdev,
sounddevice, the engine, CTranslate2) are imported inside the checks that need them, and
a missing one is reported, never a crash.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from whisperd.doctor.keys import (
    INPUT_GLOB,
    KEYS_EXTRA,
    KEYS_EXTRA_HINT,
    MODULES_DIR,
    PACKAGING_HINT,
    SYS_MODULE_DIR,
    UINPUT_PATH,
    check_audio,
    check_keyboards,
    check_keys_extra,
    check_uinput,
    importable,
    missing_keys_modules,
)
from whisperd.doctor.report import Check, Status

__all__ = [
    "INPUT_GLOB",
    "KEYS_EXTRA",
    "KEYS_EXTRA_HINT",
    "MODULES_DIR",
    "PACKAGING_HINT",
    "SYS_MODULE_DIR",
    "UINPUT_PATH",
    "UNITS",
    "Check",
    "Status",
    "check_audio",
    "check_cuda",
    "check_keyboards",
    "check_keys_extra",
    "check_model",
    "check_remote_network",
    "check_socket",
    "check_uinput",
    "check_units",
    "collect",
    "missing_keys_modules",
    "run_doctor",
]

UNITS = ("whisperd.socket", "whisperd.service", "whisperd-keys.service")


# -- socket and units --------------------------------------------------------------------
def _systemctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    if not shutil.which("systemctl"):
        return None
    try:
        return subprocess.run(
            ["systemctl", "--user", *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def user_manager_reachable() -> bool:
    probe = _systemctl("show-environment")
    return probe is not None and probe.returncode == 0


def check_socket() -> Check:
    name = "whisperd socket"
    try:
        from whisperd.config import default_socket_path

        path = str(os.environ.get("WHISPERD_SOCKET") or default_socket_path())
    except (ImportError, AttributeError, OSError) as exc:
        return Check(Status.SKIP, name, f"cannot determine the socket path ({exc})")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        if not user_manager_reachable():  # then check_units says what to do instead
            return Check(Status.WARN, name, f"{path} does not exist: whisperctl starts whisperd")
        return Check(
            Status.FAIL,
            name,
            f"{path} does not exist: `systemctl --user enable --now whisperd.socket`",
        )
    if not stat.S_ISSOCK(mode):
        return Check(Status.FAIL, name, f"{path} exists but is not a socket")
    return Check(Status.OK, name, f"{path}")


def check_units() -> list[Check]:
    probe = _systemctl("show-environment")
    if probe is None:
        return [Check(Status.SKIP, "user units", "systemctl not found")]
    if probe.returncode != 0:
        # Not a failure: whisperctl starts whisperd by itself, and whisperd-keys can be
        # started by the desktop session; only the start at login needs the manager.
        why = (probe.stderr or probe.stdout).strip().splitlines()
        return [
            Check(
                Status.WARN,
                "user units",
                f"the systemd user manager is not reachable ({why[0] if why else 'no answer'}): "
                "whisperctl starts whisperd by itself; start whisperd-keys from your desktop's "
                "autostart instead of its unit (docs/keys.md, Set-up)",
            )
        ]
    checks = []
    for unit in UNITS:
        result = _systemctl("is-enabled", unit)
        state = (result.stdout.strip() if result else "") or "not-found"
        if state in ("enabled", "static", "linked", "indirect", "alias"):
            checks.append(Check(Status.OK, unit, state))
        elif unit == "whisperd.service":
            # Started by its socket; only its presence matters.
            status = Status.OK if state == "disabled" else Status.FAIL
            checks.append(Check(status, unit, state))
        else:
            hint = "install the unit files, then `systemctl --user enable --now " + unit + "`"
            checks.append(Check(Status.FAIL, unit, f"{state}: {hint}"))
    return checks


# -- model and CUDA ----------------------------------------------------------------------
def check_model(spec: str | None) -> Check:
    name = "model"
    try:
        from whisperd.engine import ModelNotFound, resolve_model
    except (ImportError, AttributeError) as exc:
        return Check(Status.SKIP, name, f"the engine cannot be imported ({exc})")
    try:
        resolved = resolve_model(spec)  # never downloads: that is the daemon's decision
    except ModelNotFound as exc:
        return Check(Status.FAIL, name, str(exc))
    where = getattr(resolved, "path", resolved)
    source = getattr(resolved, "source", "")
    return Check(
        Status.OK, name, f"{spec or 'default'} -> {where}" + (f" ({source})" if source else "")
    )


def check_cuda() -> Check:
    name = "CUDA/cuDNN"
    try:
        from whisperd.engine import ModelNotFound, choose_device
    except (ImportError, AttributeError) as exc:
        return Check(Status.SKIP, name, f"the engine cannot be imported ({exc})")
    try:
        choice = choose_device("cuda", "auto")
    except ModelNotFound as exc:
        return Check(Status.FAIL, name, f"{exc}: install the NVIDIA driver, CUDA 12 and cuDNN 9")
    except (ImportError, OSError, RuntimeError) as exc:
        return Check(Status.FAIL, name, f"CUDA cannot be used ({exc})")
    return Check(Status.OK, name, str(getattr(choice, "reason", choice)))


# -- running it --------------------------------------------------------------------------
def _read_config(path: str | None) -> dict[str, Any]:
    try:
        from whisperd.config import read_toml

        return read_toml(path)
    except Exception as exc:  # noqa: BLE001 - a broken config is itself a finding
        print(f"[FAIL] configuration: {exc}", file=sys.stderr)
        return {}


def _trigger_code(keys: dict[str, Any]) -> int:
    """The configured trigger's key code; KEY_INSERT when it cannot be known (no evdev to
    name keys with, or a bad name, which the keys checks report)."""
    try:
        from whisperd.keys.keynames import KeyNameError, parse_combo
    except ImportError:
        return 110  # KEY_INSERT
    try:
        return parse_combo(str(keys.get("trigger", "insert")))[-1]
    except KeyNameError:
        return 110


def keyboards_and_ways(keys: dict[str, Any], config: dict[str, Any]) -> list[Check]:
    """The keyboards as this configuration needs them, the way to dictate it uses (trigger
    key or desktop shortcuts, whisperd/doctorways.py), and whisperd-keys' control socket."""
    from whisperd import doctorways

    keyboards = check_keyboards(_trigger_code(keys))
    return [
        *doctorways.keyboard_checks(keys, keyboards),
        doctorways.way_check(keys, keyboards),
        doctorways.control_check(config),
    ]


def collect(config: dict[str, Any]) -> list[Check]:
    daemon = config.get("daemon", {}) if isinstance(config.get("daemon"), dict) else {}
    keys = config.get("keys", {}) if isinstance(config.get("keys"), dict) else {}
    steps: Iterable[Callable[[], Check | list[Check]]] = (
        check_keys_extra,
        check_uinput,
        lambda: keyboards_and_ways(keys, config),
        lambda: check_audio(keys.get("audio_device")),
        check_socket,
        check_units,
        lambda: check_model(daemon.get("model")),
    )
    checks: list[Check] = []
    for step in steps:
        result = step()
        checks += result if isinstance(result, list) else [result]
    if daemon.get("device") == "cuda":
        checks.append(check_cuda())
    if daemon.get("engine") == "remote":
        checks.append(check_remote_network())
    return checks


def check_remote_network() -> Check:
    """engine = remote: the remote extra is installed and whisperd.service may reach the
    network (the unit denies it unless units/dropins/remote-engine.conf is installed)."""
    name = "remote engine"
    missing = [m for m in ("aiohttp", "wyoming") if not importable(m)]
    if missing:
        return Check(
            Status.FAIL, name, f"{', '.join(missing)} missing: pip install 'whisperd[serve]'"
        )
    shown = _systemctl("show", "whisperd.service", "-p", "PrivateNetwork,RestrictAddressFamilies")
    if shown is None or shown.returncode != 0:
        return Check(Status.SKIP, name, "cannot ask systemd how whisperd.service is confined")
    props = dict(line.partition("=")[::2] for line in shown.stdout.splitlines())
    families = props.get("RestrictAddressFamilies", "")
    denied = props.get("PrivateNetwork") == "yes" or (
        bool(families) and "AF_INET" not in families and not families.startswith("~")
    )
    if denied:
        return Check(
            Status.WARN,
            name,
            "whisperd.service denies the network, so every request falls back: install "
            "units/dropins/remote-engine.conf (docs/remote.md)",
        )
    return Check(Status.OK, name, "whisperd.service may reach the network")


def run_doctor(config_path: str | None = None, out: TextIO | None = None) -> int:
    """Print every check; exit status 1 when something needed is missing."""
    stream = out or sys.stdout
    checks = collect(_read_config(config_path))
    for check in checks:
        print(check.line(), file=stream)
    failed = [c for c in checks if c.status is Status.FAIL]
    if failed:
        print(f"{len(failed)} problem(s) found.", file=stream)
        return 1
    print("Everything whisperd needs is in place.", file=stream)
    return 0
