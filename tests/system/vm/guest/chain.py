#!/usr/bin/env python3
"""The whole dictation chain on a real kernel, driven from outside like a person would.

Runs as root inside the VM with the package's own interpreter (it has python-evdev and
xkbcommon). A test keyboard made through uinput holds INSERT, the PulseAudio virtual
microphone plays speech.wav, INSERT is released, and what whisperd-keys types through its
virtual keyboard is read back from that keyboard's evdev node and decoded with the XKB
layout. Prints @@RESULT / @@TEXT / @@TIMING lines.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import evdev
from evdev import InputDevice, UInput
from evdev import ecodes as e
from xkbcommon import xkb

VIRTUAL_NAME = "whisperd virtual keyboard"
UENV = ["XDG_RUNTIME_DIR=/run/user/1000", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus"]
WORDS = open("/opt/systest/words.txt").read().split()
KB_KEYS = list(range(e.KEY_ESC, e.KEY_MICMUTE + 1))
RESULTS = {"pass": 0, "fail": 0}


def result(name: str, ok: bool, info: str = "") -> None:
    RESULTS["pass" if ok else "fail"] += 1
    print(f"@@RESULT {name} {'PASS' if ok else 'FAIL'} {info}".rstrip(), flush=True)


def asuser(*cmd: str, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(
        ["runuser", "-u", "user", "--", "env", *UENV, *cmd], capture_output=True, text=True, **kw
    )


def keys_journal() -> str:
    return asuser("journalctl", "--user", "-u", "whisperd-keys", "--no-pager", "-o", "cat").stdout


def find_device(
    name: str, exclude: set[str] = frozenset(), timeout: float = 60
) -> InputDevice | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in evdev.list_devices():
            if path in exclude:
                continue
            try:
                dev = InputDevice(path)
            except OSError:
                continue
            if dev.name == name:
                return dev
            dev.close()
        time.sleep(0.1)
    return None


def is_grabbed_by_someone(dev: InputDevice) -> bool:
    try:
        dev.grab()
    except OSError:
        return True  # EBUSY: another process holds the grab
    dev.ungrab()
    return False


def wait_grabbed(dev: InputDevice, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_grabbed_by_someone(dev):
            return True
        time.sleep(0.2)
    return False


class Reader(threading.Thread):
    """Reads every event of one evdev node, as an application would, until it goes away."""

    def __init__(self, dev: InputDevice) -> None:
        super().__init__(daemon=True)
        self.dev = dev
        self.events: list[tuple[float, int, int, int]] = []
        self.gone = False
        self.halt = False

    def run(self) -> None:
        while not self.halt:
            try:
                ready, _, _ = select.select([self.dev.fd], [], [], 0.2)
                if ready:
                    for ev in self.dev.read():
                        self.events.append((time.monotonic(), ev.type, ev.code, ev.value))
            except OSError:  # ENODEV: the device was destroyed
                self.gone = True
                return

    def keys(self, since: int = 0) -> list[tuple[float, int, int]]:
        return [(t, c, v) for t, ty, c, v in self.events[since:] if ty == e.EV_KEY]

    def pressed(self) -> set[int]:
        down: set[int] = set()
        for _, code, value in self.keys():
            if value == 0:
                down.discard(code)
            else:
                down.add(code)
        return down


def decode(keys: list[tuple[float, int, int]], layout: str = "us") -> str:
    """Key events -> text, through a real XKB keymap of the layout (evdev code + 8)."""
    keymap = xkb.Context().keymap_new_from_names(layout=layout)
    state = keymap.state_new()
    out = []
    for _, code, value in keys:
        keycode = code + 8
        if value == 1:
            out.append(state.key_get_string(keycode))
            state.update_key(keycode, xkb.XKB_KEY_DOWN)
        elif value == 0:
            state.update_key(keycode, xkb.XKB_KEY_UP)
    return "".join(out)


def make_keyboard(name: str) -> tuple[UInput, InputDevice]:
    ui = UInput({e.EV_KEY: KB_KEYS}, name=name, phys=f"systest/{name.replace(' ', '-')}")
    dev = find_device(name, timeout=10)
    assert dev is not None, f"test keyboard {name} did not appear"
    return ui, dev


def press(ui: UInput, code: int, value: int) -> None:
    ui.write(e.EV_KEY, code, value)
    ui.syn()


GAVE_UP = (
    "nothing to type",
    "is too short",
    "dictation failed",
    "cannot start recording",
    "characters not typed",
)


def wait_typing(
    reader: Reader, since: int, quiet: float, timeout: float, journal_from: int | None = None
) -> list[tuple[float, int, int]]:
    """Wait until typing starts and then stays quiet for `quiet` seconds, or whisperd-keys
    says in its journal (from character `journal_from` on) that it will type nothing."""
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while time.monotonic() < deadline:
        keys = reader.keys(since)
        if keys and time.monotonic() - keys[-1][0] > quiet and not reader.pressed():
            return keys
        if journal_from is not None and not keys and time.monotonic() - checked > 15:
            checked = time.monotonic()
            new = keys_journal()[journal_from:]
            if any(p in new for p in GAVE_UP):
                print("whisperd-keys gave up:", new[-1500:], flush=True)
                return keys
        time.sleep(0.2)
    return reader.keys(since)


def words_of(text: str) -> list[str]:
    return "".join(c if c.isalpha() or c == " " else " " for c in text.lower()).split()


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def check_unplug_with_a_key_held(out: Reader) -> None:
    """A keyboard destroyed while A is held on it: applications get A's release."""
    kb_c, dev_c = make_keyboard("systest keyboard C")
    grabbed = wait_grabbed(dev_c, 60)
    press(kb_c, e.KEY_A, 1)
    held = wait_for(lambda: e.KEY_A in out.pressed(), 15)
    dev_c.close()
    kb_c.close()  # unplugged: the node goes away with A still down
    released = wait_for(lambda: e.KEY_A not in out.pressed(), 15)
    result(
        "unplug_releases_held_keys",
        grabbed and held and released,
        f"grabbed {grabbed}, A held {held}, released {released}; {out.pressed()}",
    )


def check_events_dropped_by_the_kernel(kb: UInput, out: Reader) -> None:
    """whisperd-keys stopped (SIGSTOP) while C is released and 300 keys are tapped: the
    kernel's 64-event buffer for it overflows and drops C's release (SYN_DROPPED). After
    SIGCONT no key may stay held for applications."""
    pid = asuser("systemctl", "--user", "show", "-p", "MainPID", "--value", "whisperd-keys")
    main_pid = int(pid.stdout.strip() or 0)
    press(kb, e.KEY_C, 1)
    held = wait_for(lambda: e.KEY_C in out.pressed(), 15)
    if main_pid > 0:
        os.kill(main_pid, signal.SIGSTOP)
    press(kb, e.KEY_C, 0)
    for _ in range(300):
        press(kb, e.KEY_D, 1)
        press(kb, e.KEY_D, 0)
    if main_pid > 0:
        os.kill(main_pid, signal.SIGCONT)
    released = wait_for(lambda: not out.pressed(), 15)
    said = "events were lost" in keys_journal()
    result(
        "dropped_events_leave_no_key_held",
        main_pid > 0 and held and released and said,
        f"pid {main_pid}, C held {held}, all released {released}, logged {said}; {out.pressed()}",
    )


def main() -> int:
    # the test keyboard exists before whisperd-keys starts
    kb_a, dev_a = make_keyboard("systest keyboard A")
    app_a = Reader(InputDevice(dev_a.path))  # an application reading keyboard A directly
    app_a.start()

    t0 = time.monotonic()
    start = asuser("systemctl", "--user", "start", "whisperd-keys.service")
    result("keys_service_starts", start.returncode == 0, start.stderr.strip())
    virt = find_device(VIRTUAL_NAME, timeout=120)
    result(
        "virtual_keyboard_appears",
        virt is not None,
        f"after {time.monotonic() - t0:.1f} s" if virt else keys_journal()[-2000:],
    )
    if virt is None:
        return 1
    out = Reader(virt)  # what applications see from whisperd-keys
    out.start()
    grabbed = wait_grabbed(dev_a, 60)
    print(f"@@TIMING keys_ready_s={time.monotonic() - t0:.1f}", flush=True)
    result("keyboard_a_grabbed", grabbed)

    # other keys pass through the virtual keyboard while the physical one is grabbed
    mark = len(out.events)
    for code in (e.KEY_H, e.KEY_I):
        press(kb_a, code, 1)
        press(kb_a, code, 0)
    passed = wait_typing(out, mark, 0.5, 15)
    result("other_keys_pass_through", decode(passed) == "hi", repr(decode(passed)))

    # the dictation: hold INSERT, the microphone hears the sentence, release
    mark = len(out.events)
    app_mark = len(app_a.events)
    journal_mark = len(keys_journal())
    press(kb_a, e.KEY_INSERT, 1)
    time.sleep(0.6)
    play = asuser("paplay", "--latency-msec=30", "--device=virtspk", "/opt/systest/speech.wav")
    time.sleep(0.8)
    press(kb_a, e.KEY_INSERT, 0)
    released = time.monotonic()
    if play.returncode != 0:
        print("paplay failed:", play.stderr, flush=True)
    typed = wait_typing(out, mark, 6.0, 1750, journal_mark)  # keys timeout: 1800 s
    text = decode(typed)
    first = typed[0][0] - released if typed else -1
    last = typed[-1][0] - released if typed else -1
    print(f"@@TEXT typed {text}", flush=True)
    print(
        f"@@TIMING release_to_first_key_s={first:.1f} release_to_last_key_s={last:.1f} "
        f"key_events={len(typed)}",
        flush=True,
    )
    print(
        "---- whisperd-keys journal after the dictation\n" + keys_journal()[journal_mark:][-3000:],
        flush=True,
    )
    print(
        "---- whisperd journal after the dictation\n"
        + asuser(
            "journalctl", "--user", "-u", "whisperd", "--no-pager", "-o", "cat", "-n", "12"
        ).stdout,
        flush=True,
    )
    missing = [w for w in WORDS if w not in words_of(text)]
    result("dictation_typed_the_sentence", not missing, f"missing {missing}" if missing else "")
    result("no_key_left_pressed_after_typing", not out.pressed(), str(out.pressed()))

    # suppression: INSERT reached no application
    insert_out = [k for k in out.keys() if k[1] == e.KEY_INSERT]
    insert_app = [k for k in app_a.keys(app_mark) if k[1] == e.KEY_INSERT]
    result("trigger_not_on_virtual_keyboard", not insert_out, str(insert_out[:4]))
    result(
        "trigger_not_seen_by_apps_reading_the_keyboard",
        not insert_app and not app_a.keys(),
        f"{len(app_a.keys())} events leaked",
    )

    # hot-plug: a keyboard plugged in after start is used
    before = keys_journal().count("recording started")
    kb_b, dev_b = make_keyboard("systest keyboard B")
    result("keyboard_b_hotplug_grabbed", wait_grabbed(dev_b, 60))
    press(kb_b, e.KEY_INSERT, 1)
    time.sleep(1.5)
    press(kb_b, e.KEY_INSERT, 0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and keys_journal().count("recording started") <= before:
        time.sleep(0.5)
    result("keyboard_b_triggers_recording", keys_journal().count("recording started") > before)
    time.sleep(3)
    check_unplug_with_a_key_held(out)
    check_events_dropped_by_the_kernel(kb_a, out)

    # a clean stop (SIGTERM) releases everything and ungrabs
    stop = asuser("systemctl", "--user", "stop", "whisperd-keys.service")
    time.sleep(1)
    result(
        "stop_ungrabs_keyboards",
        stop.returncode == 0
        and not is_grabbed_by_someone(dev_a)
        and not is_grabbed_by_someone(dev_b),
    )
    out.halt = True

    # killing whisperd-keys (SIGKILL) in the middle of typing leaves no key pressed
    text = "The Quick Brown Fox Jumps Over The Lazy Dog, " * 6
    known = {d for d in evdev.list_devices()}
    proc = subprocess.Popen(
        [
            "setpriv",
            "--reuid=1000",
            "--regid=1000",
            "--init-groups",
            "env",
            "HOME=/home/user",
            *UENV,
            "/usr/bin/whisperd-keys",
            "--layout",
            "us",
            "--type-delay",
            "0.03",
            "--type",
            text,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    virt2 = find_device(VIRTUAL_NAME, exclude=known, timeout=120)
    if virt2 is None:
        proc.kill()
        result(
            "kill_mid_typing_no_key_pressed",
            False,
            "no virtual keyboard: " + proc.communicate()[0][-1000:],
        )
    else:
        typing = Reader(virt2)
        typing.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len([k for k in typing.keys() if k[2] == 1]) < 25:
            time.sleep(0.01)
        # kill at a moment a key (ideally Shift) is held
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not typing.pressed():
            time.sleep(0.001)
        held = {e.KEY[c] if isinstance(e.KEY.get(c), str) else c for c in typing.pressed()}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        typing.join(10)
        partial = decode(typing.keys())
        print(f"@@TEXT killed_after {partial}", flush=True)
        result(
            "kill_mid_typing_no_key_pressed",
            typing.gone and not typing.pressed() and partial and len(partial) < len(text),
            f"held at kill: {held}; after: {typing.pressed()}; device gone: {typing.gone}",
        )
    app_a.halt = True
    print(f"@@SUMMARY chain_passed={RESULTS['pass']} chain_failed={RESULTS['fail']}", flush=True)
    return 0 if RESULTS["fail"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
