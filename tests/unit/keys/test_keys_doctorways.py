"""whisperctl doctor on the two ways to dictate: the trigger key (input group) or desktop
shortcuts (trigger = "none")."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisperd import doctorways
from whisperd.control.server import ControlServer
from whisperd.doctor import Check, Status

READABLE = [
    Check(Status.OK, "keyboards (trigger)", "1 readable"),
    Check(Status.OK, "input group", "in"),
]
DENIED = [
    Check(Status.FAIL, "keyboards (trigger)", "5 input devices cannot be read"),
    Check(Status.FAIL, "input group", "not a member"),
]


def test_cannot_read_keyboards_recommends_shortcuts() -> None:
    check = doctorways.way_check({}, DENIED, env={"XDG_CURRENT_DESKTOP": "GNOME"})
    assert check.status is Status.WARN
    assert 'Recommended here: set [keys] trigger = "none"' in check.message
    assert "Custom Shortcuts" in check.message  # GNOME's place for it
    assert "usermod -aG input" in check.message  # the other way, with its cost
    assert "\n" not in check.line()


def test_reading_keyboards_works_and_names_the_alternative() -> None:
    check = doctorways.way_check({"trigger": "insert"}, READABLE, env={"SWAYSOCK": "/x"})
    assert check.status is Status.OK
    assert "input group" in check.message and "bindsym --release" in check.message


def test_trigger_none_needs_no_keyboard() -> None:
    keys = {"trigger": "none"}
    checks = doctorways.keyboard_checks(keys, DENIED)
    assert [c.status for c in checks] == [Status.SKIP, Status.SKIP]
    assert doctorways.keyboard_checks({"trigger": "insert"}, DENIED) == DENIED
    check = doctorways.way_check(keys, DENIED, env={"HYPRLAND_INSTANCE_SIGNATURE": "x"})
    assert check.status is Status.OK and "bindr" in check.message


@pytest.mark.parametrize(
    ("env", "found"),
    [
        ({"XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}, "gnome"),
        ({"XDG_CURRENT_DESKTOP": "KDE"}, "kde"),
        ({"XDG_CURRENT_DESKTOP": "sway"}, "sway"),
        ({"I3SOCK": "/run/user/1000/i3/ipc"}, "i3"),
        ({"XDG_CURRENT_DESKTOP": "Hyprland"}, "hyprland"),
        ({"DISPLAY": ":0"}, "x11"),
        ({}, ""),
    ],
)
def test_desktop_detection(env: dict[str, str], found: str) -> None:
    assert doctorways.desktop(env) == found
    assert "whisperctl dictate" in doctorways.shortcut_hint(env)


class IdleStatus:
    version = 0

    def to_json(self, with_text: bool = False) -> dict[str, object]:
        return {"type": "status", "state": "idle", "since": 0.0}


class Handler:
    def dictate(self, action: object) -> str:
        return "idle"

    def snapshot(self) -> IdleStatus:
        return IdleStatus()


def test_control_check(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    raw = {"keys": {"control_socket": str(run / "k.sock")}}
    assert doctorways.control_check(raw).status is Status.WARN
    assert "not running" in doctorways.control_check(raw).message
    server = ControlServer(run / "k.sock", Handler())
    server.start()
    try:
        check = doctorways.control_check(raw)
    finally:
        server.close()
    assert check.status is Status.OK and "idle" in check.message
