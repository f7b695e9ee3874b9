"""``whisperctl doctor``: what whisperd and whisperd-keys need, what is missing, how to fix it.

Import-light on purpose (stdlib only at import time): heavy or optional modules (evdev,
sounddevice, the engine, CTranslate2) are imported inside the checks that need them, and
a missing one is reported, never a crash.
"""

from __future__ import annotations

import enum
import glob
import grp
import os
import platform
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

UINPUT_PATH = "/dev/uinput"
INPUT_GLOB = "/dev/input/event*"
SYS_MODULE_DIR = "/sys/module"
MODULES_DIR = "/lib/modules"
UNITS = ("whisperd.socket", "whisperd.service", "whisperd-keys.service")
PACKAGING_HINT = (
    "install packaging/modules-load.d/whisperd.conf to /etc/modules-load.d/ and "
    "packaging/60-whisperd-uinput.rules to /etc/udev/rules.d/"
)


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    message: str

    def line(self) -> str:
        return f"[{self.status.value:>4}] {self.name}: {self.message}"


# -- optional extras ---------------------------------------------------------------------
# Dictation's Python modules, from the `keys` extra: (import name, PyPI name).
KEYS_EXTRA = (
    ("evdev", "evdev"),
    ("sounddevice", "sounddevice"),
    ("uinput", "python-uinput"),
    ("xkbcommon", "xkbcommon"),
)
KEYS_EXTRA_HINT = "pip install 'whisperd[keys]' (in a clone: .venv/bin/pip install -e '.[keys]')"


def _importable(module: str) -> bool:
    """Whether ``module`` imports; a C library it needs being absent counts as importable
    here (the check that uses it names the library)."""
    try:
        __import__(module)
    except ImportError:
        return False
    except OSError:
        return True
    return True


def missing_keys_modules() -> list[str]:
    """The PyPI names of the `keys` extra's packages that cannot be imported."""
    return [pypi for module, pypi in KEYS_EXTRA if not _importable(module)]


def check_keys_extra() -> Check:
    name = "keys extra (dictation)"
    missing = missing_keys_modules()
    if missing:
        return Check(
            Status.FAIL,
            name,
            f"{', '.join(missing)} not installed, so whisperd-keys cannot run "
            f"(file transcription works without it): {KEYS_EXTRA_HINT}",
        )
    return Check(Status.OK, name, ", ".join(pypi for _, pypi in KEYS_EXTRA) + " installed")


# -- uinput ------------------------------------------------------------------------------
def _uinput_module_state() -> str:
    """ "loaded", "available" (can be modprobed), "absent" (not in this kernel)."""
    if os.path.isdir(os.path.join(SYS_MODULE_DIR, "uinput")):
        return "loaded"
    release = platform.release()
    base = os.path.join(MODULES_DIR, release)
    for index in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(base, index), encoding="utf-8") as handle:
                if any("/uinput.ko" in line for line in handle):
                    return "available"
        except OSError:
            continue
    return "absent"


def check_uinput() -> Check:
    name = "uinput (typing)"
    if not os.path.exists(UINPUT_PATH):
        state = _uinput_module_state()
        if state == "absent":
            why = f"this kernel ({platform.release()}) has no uinput module"
            fix = "on a normal Linux kernel run `sudo modprobe uinput`"
        else:
            why = "the uinput kernel module is not loaded"
            fix = "run `sudo modprobe uinput`"
        return Check(
            Status.FAIL, name, f"{UINPUT_PATH} is absent: {why}; {fix} and {PACKAGING_HINT}"
        )
    if not os.access(UINPUT_PATH, os.R_OK | os.W_OK):
        return Check(
            Status.FAIL,
            name,
            f"{UINPUT_PATH} exists but this user cannot open it: install "
            "packaging/60-whisperd-uinput.rules to /etc/udev/rules.d/, run "
            "`sudo udevadm control --reload && sudo udevadm trigger /dev/uinput`, log in again",
        )
    return Check(Status.OK, name, f"{UINPUT_PATH} is writable")


# -- keyboards ---------------------------------------------------------------------------
def _in_input_group() -> bool | None:
    try:
        gid = grp.getgrnam("input").gr_gid
    except KeyError:
        return None
    return gid in os.getgroups() or gid == os.getgid()


def _user_listed_in_input_group() -> bool:
    try:
        members = grp.getgrnam("input").gr_mem
    except KeyError:
        return False
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    return user in members


def check_keyboards(trigger_code: int = 110) -> list[Check]:
    name = "keyboards (trigger)"
    nodes = sorted(glob.glob(INPUT_GLOB))
    if not nodes:
        return [Check(Status.FAIL, name, "no /dev/input/event* devices at all (no input devices)")]
    try:
        from evdev import InputDevice, ecodes
    except ImportError:
        return [Check(Status.SKIP, name, "needs evdev, from the keys extra (see above)")]
    readable: list[str] = []
    denied = 0
    for node in nodes:
        try:
            device = InputDevice(node)
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue
        keys = device.capabilities(absinfo=False).get(ecodes.EV_KEY, [])
        if trigger_code in keys and device.name != "whisperd virtual keyboard":
            readable.append(f"{device.name} ({node})")
        device.close()
    checks: list[Check] = []
    member = _in_input_group()
    if readable:
        checks.append(Check(Status.OK, name, f"{len(readable)} readable: {', '.join(readable)}"))
    elif denied:
        checks.append(
            Check(
                Status.FAIL,
                name,
                f"{denied} input devices cannot be read: `sudo usermod -aG input $USER`, "
                "then log out and in again",
            )
        )
    else:
        checks.append(Check(Status.FAIL, name, "no keyboard with the trigger key was found"))
    if member is None:
        checks.append(Check(Status.WARN, "input group", "this system has no 'input' group"))
    elif member:
        checks.append(Check(Status.OK, "input group", "this session is in group 'input'"))
    elif _user_listed_in_input_group():
        checks.append(
            Check(Status.WARN, "input group", "added to 'input' but not yet active: log in again")
        )
    elif not readable:
        checks.append(
            Check(Status.FAIL, "input group", "not a member: `sudo usermod -aG input $USER`")
        )
    return checks


# -- audio -------------------------------------------------------------------------------
def check_audio(device: Any = None) -> Check:
    name = "microphone"
    try:
        import sounddevice
    except OSError as exc:
        return Check(Status.FAIL, name, f"PortAudio is missing ({exc}): install libportaudio2")
    except ImportError:
        return Check(Status.SKIP, name, "needs sounddevice, from the keys extra (see above)")
    try:
        info = sounddevice.query_devices(device if device not in ("", None) else None, "input")
    except (ValueError, sounddevice.PortAudioError) as exc:
        return Check(
            Status.FAIL,
            name,
            f"no input audio device ({exc}); is PulseAudio/PipeWire running "
            "(and libasound2-plugins installed)?",
        )
    rate = int(info.get("default_samplerate", 0))
    return Check(Status.OK, name, f"default input: {info.get('name')} ({rate} Hz)")


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
        why = (probe.stderr or probe.stdout).strip().splitlines()
        return [
            Check(
                Status.FAIL,
                "user units",
                f"the systemd user manager is not reachable ({why[0] if why else 'no answer'})",
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
    missing = [m for m in ("aiohttp", "wyoming") if not _importable(m)]
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


if __name__ == "__main__":
    sys.exit(run_doctor())
