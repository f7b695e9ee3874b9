"""``whisperctl doctor``'s checks for dictation (whisperd-keys): its Python extra,
/dev/uinput, the keyboards and the ``input`` group, the microphone. Standard library only
at import time: evdev and sounddevice are imported inside the checks that need them."""

from __future__ import annotations

import glob
import grp
import os
import platform
from typing import Any

from whisperd.doctor.report import Check, Status

UINPUT_PATH = "/dev/uinput"
INPUT_GLOB = "/dev/input/event*"
SYS_MODULE_DIR = "/sys/module"
MODULES_DIR = "/lib/modules"
PACKAGING_HINT = (
    "install packaging/modules-load.d/whisperd.conf to /etc/modules-load.d/ and "
    "packaging/60-whisperd-uinput.rules to /etc/udev/rules.d/"
)


# -- optional extras ---------------------------------------------------------------------
# Dictation's Python modules, from the `keys` extra: (import name, PyPI name).
KEYS_EXTRA = (
    ("evdev", "evdev"),
    ("sounddevice", "sounddevice"),
    ("uinput", "python-uinput"),
    ("xkbcommon", "xkbcommon"),
)
KEYS_EXTRA_HINT = "pip install 'whisperd[keys]' (in a clone: .venv/bin/pip install -e '.[keys]')"


def importable(module: str) -> bool:
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
    return [pypi for module, pypi in KEYS_EXTRA if not importable(module)]


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
