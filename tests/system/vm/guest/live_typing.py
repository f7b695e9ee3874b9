#!/usr/bin/env python3
"""Live typing on a real kernel: whisperd-keys types committed text while the key is held.

Runs as root inside the VM after chain.py, with the package's interpreter. whisperd-keys
(the installed program, as the desktop user) talks to standin_daemon.py, which speaks the
real protocol and sends commit events as the audio arrives (the real model takes minutes
per decode under emulation). A uinput test keyboard holds INSERT; what whisperd-keys types
is read back from its virtual keyboard and decoded with the XKB layout. Checks:

- live_typed_during_hold: the first pieces are typed while INSERT is still held;
- live_waits_for_shift: while Shift is held nothing is typed; after it, the queued piece;
- live_text_equals_result: at release the last piece follows; everything typed equals
  the result's text;
- live_no_key_left_pressed: no key of the virtual keyboard stays down, INSERT never on it;
- live_escape_cancels: Escape while holding stops the dictation; what was typed stays,
  nothing more comes, Escape reaches no application;
then the typing speed of the virtual keyboard at several type_delay values (@@TIMING).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import time

import evdev
from evdev import ecodes as e

sys.path.insert(0, "/opt/systest")
from chain import (  # noqa: E402 - the payload's shared helpers
    UENV,
    VIRTUAL_NAME,
    Reader,
    decode,
    find_device,
    make_keyboard,
    press,
    result,
    wait_grabbed,
)

SOCKET = "/run/user/1000/standin/whisperd.sock"
# In the user's private directory: the stand-in runs as the user (a file root made in /tmp
# would not be writable for it).
TIMES = "/run/user/1000/standin/commit-times.txt"
PIECES = ["Live typing works.", "The second piece,", "and a third."]
RESULT_TEXT = "Live typing works. The second piece, and a third. Done."
AS_USER = ["setpriv", "--reuid=1000", "--regid=1000", "--init-groups", "env", "HOME=/home/user"]


def as_user(*cmd: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen([*AS_USER, *UENV, *cmd], **kw)


def all_commit_times() -> list[float]:
    try:
        with open(TIMES) as times:
            return [float(line.split()[1]) for line in times if line.strip()]
    except OSError:
        return []


class Commits:
    """The stand-in's commit times since this dictation began."""

    def __init__(self) -> None:
        self.before = len(all_commit_times())

    def __call__(self) -> list[float]:
        return all_commit_times()[self.before :]


def typed_text(out: Reader, since: int) -> str:
    return decode(out.keys(since))


def wait_for(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def first_key_after(out: Reader, since: int, moment: float) -> float | None:
    for when, _, value in out.keys(since):
        if when >= moment and value == 1:
            return when
    return None


def dictation(kb, out: Reader) -> None:  # type: ignore[no-untyped-def]
    commit_times = Commits()
    mark = len(out.events)
    press(kb, e.KEY_INSERT, 1)
    two = PIECES[0] + " " + PIECES[1]
    during = wait_for(lambda: typed_text(out, mark) == two, 180)
    text = typed_text(out, mark)
    times = commit_times()
    latencies = []
    for when in times[:2]:
        key = first_key_after(out, mark, when)
        if key is not None:
            latencies.append(key - when)
    print(f"@@TEXT live_during_hold {text}", flush=True)
    print(
        "@@TIMING live_commit_to_first_key_s=" + ",".join(f"{x:.3f}" for x in latencies),
        flush=True,
    )
    result("live_typed_during_hold", during, repr(text))

    # Shift held: the third piece waits for it, then is typed (INSERT still held)
    press(kb, e.KEY_LEFTSHIFT, 1)
    shift_mark = len(out.events)
    wait_for(lambda: len(commit_times()) >= 3, 120)
    time.sleep(1.5)
    letters = [k for k in out.keys(shift_mark) if k[1] != e.KEY_LEFTSHIFT]
    press(kb, e.KEY_LEFTSHIFT, 0)
    three = " ".join(PIECES)
    typed_after = wait_for(lambda: typed_text(out, mark) == three, 120)
    result(
        "live_waits_for_shift",
        not letters and typed_after,
        f"{len(letters)} key events while Shift was held; then {typed_text(out, mark)!r}",
    )

    released = time.monotonic()
    press(kb, e.KEY_INSERT, 0)
    done = wait_for(lambda: typed_text(out, mark) == RESULT_TEXT, 180)
    keys = out.keys(mark)
    last = keys[-1][0] - released if keys else -1.0
    print(f"@@TEXT live_typed {typed_text(out, mark)}", flush=True)
    print(f"@@TIMING live_release_to_last_key_s={last:.3f} key_events={len(keys)}", flush=True)
    result("live_text_equals_result", done, repr(typed_text(out, mark)))
    time.sleep(0.5)
    insert = [k for k in out.keys() if k[1] == e.KEY_INSERT]
    result(
        "live_no_key_left_pressed",
        not out.pressed() and not insert,
        f"held {out.pressed()}, INSERT events {len(insert)}",
    )


def escape_cancels(kb, out: Reader) -> None:  # type: ignore[no-untyped-def]
    commit_times = Commits()
    mark = len(out.events)
    press(kb, e.KEY_INSERT, 1)
    first = wait_for(lambda: typed_text(out, mark) == PIECES[0], 180)
    press(kb, e.KEY_LEFTSHIFT, 1)  # the next piece must wait...
    wait_for(lambda: len(commit_times()) >= 2, 120)
    press(kb, e.KEY_ESC, 1)  # ...and the cancel drops it
    press(kb, e.KEY_ESC, 0)
    press(kb, e.KEY_LEFTSHIFT, 0)
    time.sleep(3.0)
    press(kb, e.KEY_INSERT, 0)
    time.sleep(3.0)
    text = typed_text(out, mark)
    esc = [k for k in out.keys(mark) if k[1] == e.KEY_ESC]
    print(f"@@TEXT live_cancelled {text}", flush=True)
    result(
        "live_escape_cancels",
        first and text == PIECES[0] and not esc and not out.pressed(),
        f"typed {text!r}, Escape events {len(esc)}, held {out.pressed()}",
    )


def typing_speed(text: str) -> None:
    """How fast the virtual keyboard can type into an evdev reader without losing a
    character: whisperd-keys --type at several delays."""
    for delay in ("0.004", "0.002", "0.001", "0"):
        known = set(evdev.list_devices())
        proc = as_user(
            "/usr/bin/whisperd-keys", "--layout", "us", "--type-delay", delay, "--type", text,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        dev = find_device(VIRTUAL_NAME, exclude=known, timeout=60)
        if dev is None:
            proc.kill()
            print(f"@@INFO type_delay={delay}: no virtual keyboard", flush=True)
            continue
        reader = Reader(dev)
        reader.start()
        proc.wait(300)
        time.sleep(0.5)
        reader.halt = True
        reader.join(5)
        keys = reader.keys()
        got = decode(keys)
        dropped = sum(1 for _, ty, code, _ in reader.events if ty == e.EV_SYN and code == 3)
        # The reader may open the device after the first keys went out: align what it got
        # with the text and count only characters missing after its first match.
        blocks = [b for b in difflib.SequenceMatcher(None, text, got, autojunk=False)
                  .get_matching_blocks() if b.size]  # fmt: skip
        missed_start = blocks[0].a if blocks else len(text)
        matched = sum(b.size for b in blocks)
        lost = len(text) - missed_start - matched
        span = keys[-1][0] - keys[0][0] if len(keys) > 1 else 0.0
        rate = len(got) / span if span else 0.0
        print(
            f"@@TIMING type_delay={delay} chars={len(text)} received={len(got)} "
            f"lost={lost} extra={len(got) - matched} syn_dropped={dropped} "
            f"missed_before_reader={missed_start} chars_per_s={rate:.0f}",
            flush=True,
        )


def main() -> int:
    subprocess.run(["mkdir", "-p", os.path.dirname(SOCKET)], check=True)
    os.chown(os.path.dirname(SOCKET), 1000, 1000)
    os.chmod(os.path.dirname(SOCKET), 0o700)
    standin = as_user("python3", "/opt/systest/standin_daemon.py", SOCKET, TIMES)
    kb, dev = make_keyboard("systest keyboard L")
    known = set(evdev.list_devices())
    keys = as_user(
        "/usr/bin/whisperd-keys", "--socket", SOCKET, "--layout", "us",
        stdout=open("/tmp/keys-live.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        virt = find_device(VIRTUAL_NAME, exclude=known, timeout=120)
        grabbed = virt is not None and wait_grabbed(dev, 60)
        result("live_keys_ready", grabbed, "" if grabbed else open("/tmp/keys-live.log").read())
        if not grabbed:
            return 1
        out = Reader(virt)
        out.start()
        time.sleep(1.0)
        dictation(kb, out)
        escape_cancels(kb, out)
        out.halt = True
    finally:
        keys.terminate()
        keys.wait(30)
        print("---- whisperd-keys (live) log\n" + open("/tmp/keys-live.log").read()[-3000:])
        standin.terminate()
    typing_speed("The quick brown fox jumps over the lazy dog; 1234567890. " * 4)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
