#!/usr/bin/env python3
"""Dictation without the input group, on a real kernel (issue 13).

Runs as root inside the VM after live_typing.py, with the package's interpreter. The seat
user is taken out of the `input` group first (the other payloads needed it), so every
process started here as that user has no way to read a keyboard. whisperd-keys runs with
`trigger = "none"`: it opens no /dev/input node, only /dev/uinput (given to the seat's
user by the package's uaccess rule) and the microphone, and is driven by
`whisperctl dictate toggle` twice, as a desktop shortcut would. The daemon is
standin_daemon.py (the real protocol, commit events as the audio arrives: the real model
takes minutes per decode under emulation, as in live_typing.py). What whisperd-keys types
is read back from its virtual keyboard and decoded with the XKB layout, while
`whisperctl status --follow --text` records the states. Checks (@@RESULT lines):

- nogroup_user_not_in_input: neither the user nor the whisperd-keys process is in `input`;
- nogroup_cannot_read_keyboards: that user cannot open a keyboard's event node;
- nogroup_uinput_from_uaccess: /dev/uinput is the user's through the seat ACL, not a mode;
- nogroup_keys_ready: virtual keyboard and control socket there;
- nogroup_toggle_starts / nogroup_toggle_stops: `whisperctl dictate toggle` exits 0;
- nogroup_typed_text: the text typed equals the stand-in's result;
- nogroup_no_key_left_pressed: no key of the virtual keyboard stays down;
- nogroup_no_input_device_opened: whisperd-keys holds no /dev/input node;
- nogroup_status_sequence: idle, recording (elapsed, text), transcribing/typing, idle;
- nogroup_status_stopped_at_exit: whisperd-keys stops -> the follower says `stopped`,
  and SIGTERM ends the follower with status 0.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import signal
import struct
import subprocess
import sys
import time

import evdev

sys.path.insert(0, "/opt/systest")
from chain import (  # noqa: E402 - the payload's shared helpers
    UENV,
    VIRTUAL_NAME,
    Reader,
    decode,
    find_device,
    make_keyboard,
    result,
)
from live_typing import PIECES, RESULT_TEXT, TIMES, Commits, wait_for  # noqa: E402

USER = "user"
RUN = "/run/user/1000"
PRIVATE = f"{RUN}/standin-nogroup"
SOCKET = f"{PRIVATE}/whisperd.sock"
CONTROL = f"{RUN}/whisperd-keys.sock"
CONFIG = "/home/user/.config/whisperd/nogroup.toml"
FOLLOW_LOG = "/tmp/nogroup-follow.jsonl"
KEYS_LOG = "/tmp/keys-nogroup.log"
# --init-groups reads /etc/group now: without 'input' once the user was taken out of it
AS_USER = ["setpriv", "--reuid=1000", "--regid=1000", "--init-groups", "env", "HOME=/home/user"]


def as_user(*cmd: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen([*AS_USER, *UENV, *cmd], **kw)


def run_as_user(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([*AS_USER, *UENV, *cmd], capture_output=True, text=True, timeout=timeout)


def groups_of(pid: int) -> set[int]:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]}
    return set()


def input_nodes_open(pid: int) -> list[str]:
    nodes = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/input/"):
            nodes.append(target)
    return nodes


def leave_input_group() -> None:
    input_gid = grp.getgrnam("input").gr_gid
    subprocess.run(["gpasswd", "-d", USER, "input"], capture_output=True, check=False)
    member = USER in grp.getgrnam("input").gr_mem or pwd.getpwnam(USER).pw_gid == input_gid
    probe = run_as_user("id", "-G")
    ids = {int(g) for g in probe.stdout.split()}
    result("nogroup_user_not_in_input", not member and input_gid not in ids, f"id -G: {ids}")


def cannot_read_keyboards(node: str) -> None:
    probe = run_as_user("python3", "-c", f"open({node!r}, 'rb')")
    denied = probe.returncode != 0 and "PermissionError" in probe.stderr
    result("nogroup_cannot_read_keyboards", denied, f"{node}: {probe.stderr.strip()[-200:]}")


def acl_users(path: str) -> dict[int, int]:
    """uid -> permission bits of the named-user entries of a POSIX access ACL, read from
    its extended attribute (the VM has no getfacl): version 2, then (tag, perm, id)."""
    try:
        raw = os.getxattr(path, "system.posix_acl_access")
    except OSError:
        return {}
    users = {}
    for offset in range(4, len(raw) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, offset)
        if tag == 0x02:  # ACL_USER
            users[ident] = perm
    return users


def uinput_from_uaccess() -> None:
    st = os.stat("/dev/uinput")
    mode = st.st_mode & 0o777
    granted = acl_users("/dev/uinput").get(1000, 0)
    writable = run_as_user("test", "-w", "/dev/uinput").returncode == 0
    result(
        "nogroup_uinput_from_uaccess",
        granted & 0o6 == 0o6 and not mode & 0o006 and writable,
        f"mode {mode:o} owner {st.st_uid}:{st.st_gid}; ACL for uid 1000: {granted:o}; "
        f"writable by the user: {writable}",
    )


def write_config() -> None:
    with open(CONFIG, "w") as config:
        config.write(
            "[keys]\n"
            'trigger = "none"\n'
            'layout = "us"\n'
            'language = "en"\n'
            f'socket_path = "{SOCKET}"\n'
            "status_text = true\n"
            "timeout = 600.0\n"
        )
    os.chown(CONFIG, 1000, 1000)


def follow_events() -> list[dict]:  # type: ignore[type-arg]
    events = []
    try:
        with open(FOLLOW_LOG) as lines:
            for line in lines:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return events


def last_state() -> str | None:
    events = follow_events()
    return str(events[-1].get("state")) if events else None


def states_in_order(events: list[dict]) -> list[str]:  # type: ignore[type-arg]
    seen: list[str] = []
    for event in events:
        if not seen or seen[-1] != event.get("state"):
            seen.append(str(event.get("state")))
    return seen


def check_sequence(events: list[dict]) -> None:  # type: ignore[type-arg]
    states = states_in_order(events)
    recording = [e for e in events if e.get("state") == "recording"]
    texts = [e.get("text", "") for e in recording if e.get("text")]
    # the follower started first: stopped -> idle -> recording -> (transcribing and/or
    # typing) -> idle, and nothing else
    ok = (
        states[:3] == ["stopped", "idle", "recording"]
        and states[-1] == "idle"
        and set(states[3:-1]) <= {"transcribing", "typing"}
        and len(states) >= 5
        and all(isinstance(e.get("elapsed"), (int, float)) for e in recording)
        and any(t.startswith(PIECES[0]) for t in texts)
    )
    result("nogroup_status_sequence", ok, f"states {states}; texts {texts[-1:]}")


def dictate(out: Reader) -> None:
    mark = len(out.events)
    start = run_as_user("whisperctl", "dictate", "toggle")
    result("nogroup_toggle_starts", start.returncode == 0, (start.stdout + start.stderr).strip())
    # The stand-in commits the three pieces as the audio arrives; with the default
    # shortcut_live_typing = false they are typed only after the stop (docs/keys.md).
    commits = Commits()
    committed = wait_for(lambda: len(commits()) >= len(PIECES), 180)
    print(f"@@INFO nogroup_pieces_committed_before_stop={committed}", flush=True)
    stop = run_as_user("whisperctl", "dictate", "toggle")
    result("nogroup_toggle_stops", stop.returncode == 0, (stop.stdout + stop.stderr).strip())
    done = wait_for(lambda: decode(out.keys(mark)) == RESULT_TEXT, 180)
    typed = decode(out.keys(mark))
    print(f"@@TEXT nogroup_typed {typed}", flush=True)
    result("nogroup_typed_text", done, repr(typed))
    time.sleep(1.0)
    result("nogroup_no_key_left_pressed", not out.pressed(), f"held {out.pressed()}")


def start_keys() -> tuple[subprocess.Popen, Reader | None]:  # type: ignore[type-arg]
    known = set(evdev.list_devices())
    keys = as_user(
        "/usr/bin/whisperd-keys", "--config", CONFIG,
        stdout=open(KEYS_LOG, "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    virt = find_device(VIRTUAL_NAME, exclude=known, timeout=120)
    control = wait_for(lambda: os.path.exists(CONTROL), 120)
    ready = virt is not None and control
    result("nogroup_keys_ready", ready, f"virtual keyboard {virt}, control socket {control}")
    if virt is None:
        return keys, None
    return keys, Reader(virt)


def main() -> int:
    for private in (PRIVATE, os.path.dirname(TIMES)):  # the stand-in writes as the user
        os.makedirs(private, mode=0o700, exist_ok=True)
        os.chown(private, 1000, 1000)
    leave_input_group()
    test_ui, test_keyboard = make_keyboard("systest keyboard N")  # one it must not read
    cannot_read_keyboards(test_keyboard.path)
    uinput_from_uaccess()
    write_config()
    standin = as_user("python3", "/opt/systest/standin_daemon.py", SOCKET, TIMES)
    follower = as_user(
        "whisperctl", "status", "--follow", "--text",
        stdout=open(FOLLOW_LOG, "w"), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    keys, out = start_keys()
    try:
        if out is None or keys.poll() is not None:
            return 1
        input_gid = grp.getgrnam("input").gr_gid
        groups = groups_of(keys.pid)
        print(f"@@INFO nogroup_keys_groups={sorted(groups)}", flush=True)
        if input_gid in groups:
            result("nogroup_keys_in_input_group", False, f"groups {sorted(groups)}")
            return 1
        out.start()
        time.sleep(1.0)
        dictate(out)
        opened = input_nodes_open(keys.pid)
        result("nogroup_no_input_device_opened", not opened, f"open: {opened}")
        wait_for(lambda: last_state() == "idle", 30)
        check_sequence(follow_events())
        out.halt = True
    finally:
        keys.send_signal(signal.SIGTERM)
        keys.wait(60)
        print("---- whisperd-keys (no input group) log\n" + open(KEYS_LOG).read()[-3000:])
        standin.terminate()
    stopped = wait_for(lambda: last_state() == "stopped", 30)
    follower.send_signal(signal.SIGTERM)
    _, stderr = follower.communicate(timeout=60)
    result(
        "nogroup_status_stopped_at_exit",
        stopped and follower.returncode == 0 and not stderr,
        f"last {follow_events()[-1:]}; follower rc {follower.returncode} {stderr[-300:]!r}",
    )
    test_ui.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
