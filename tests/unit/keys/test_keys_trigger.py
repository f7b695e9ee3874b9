"""Golden tests: recorded evdev sequences through the trigger state machine.

Set WHISPERD_UPDATE_GOLDEN=1 to rewrite the .golden files after an intended change,
then review the diff.
"""

from __future__ import annotations

import os

import pytest
from evdev import ecodes

from tests.unit.keys.keys_fakes import DATA, parse_evlog
from whisperd.keys.keynames import key_name, parse_combo
from whisperd.keys.trigger import (
    Action,
    CancelDictation,
    DeviceRemoved,
    Forward,
    KeyEvent,
    Mode,
    Panic,
    StartRecording,
    StopRecording,
    TriggerMachine,
)

LOGS = sorted(p.stem for p in DATA.glob("*.evlog"))


def describe(action: Action) -> str:
    if isinstance(action, Forward):
        ev = action.event
        return f"{ev.time:7.3f} forward {ev.device} {key_name(ev.code)} {ev.value}"
    if isinstance(action, StartRecording):
        return f"{action.time:7.3f} START"
    if isinstance(action, StopRecording):
        return f"{action.time:7.3f} STOP {action.reason}"
    if isinstance(action, CancelDictation):
        return f"{action.time:7.3f} CANCEL"
    assert isinstance(action, Panic)
    return f"{action.time:7.3f} PANIC"


def replay(name: str) -> list[str]:
    headers, events = parse_evlog((DATA / f"{name}.evlog").read_text())
    machine = TriggerMachine(
        combo=parse_combo(headers.get("trigger", "insert")),
        mode=Mode(headers.get("mode", "hold")),
        hold_threshold=float(headers.get("hold_threshold", "0.35")),
        max_recording=float(headers.get("max_recording", "120")),
    )
    lines: list[str] = []
    for when, event in events:
        actions = machine.feed(event) if event is not None else []
        actions += machine.tick(when)
        lines += [describe(a) for a in actions]
    return lines


@pytest.mark.parametrize("name", LOGS)
def test_golden(name: str) -> None:
    got = "\n".join(replay(name)) + "\n"
    golden = DATA / f"{name}.golden"
    if os.environ.get("WHISPERD_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(got)
    assert got == golden.read_text()


def test_hold_starts_and_stops_once_ignoring_repeat() -> None:
    lines = replay("hold_basic")
    assert [line.split()[1] for line in lines if "forward" not in line] == [
        "START",
        "STOP",
        "START",
        "STOP",
    ]
    assert not any("KEY_INSERT" in line for line in lines), "the trigger must be suppressed"
    assert sum("KEY_A" in line for line in lines) == 2, "other keys pass through while recording"


def test_auto_tells_tap_from_hold() -> None:
    lines = [line for line in replay("auto") if "forward" not in line]
    assert lines == [
        "  0.000 START",
        "  3.000 STOP toggle",
        "  5.000 START",
        "  6.200 STOP release",
    ]


def test_unplug_mid_hold_stops_and_new_keyboard_works() -> None:
    lines = [line for line in replay("hotplug") if "forward" not in line]
    assert lines == [
        "  0.000 START",
        "  1.000 STOP device_removed",
        "  1.500 START",
        "  2.000 STOP release",
    ]


def test_combo_only_main_key_suppressed() -> None:
    lines = replay("combo")
    assert "  1.100 START" in lines and "  2.500 STOP release" in lines
    assert any("KEY_RIGHTCTRL 1" in line for line in lines)
    # Space pressed before Ctrl is an ordinary key, its release too.
    assert "  3.300 forward /dev/input/event3 KEY_SPACE 0" in lines


def test_max_length_then_release_does_nothing() -> None:
    lines = [line for line in replay("max_length") if "forward" not in line]
    assert lines == [
        "  0.000 START",
        "  5.000 STOP max_length",
        "  8.000 START",
        "  8.800 STOP release",
    ]


def test_keys_down_tracks_devices() -> None:
    machine = TriggerMachine(combo=parse_combo("insert"))
    machine.feed(KeyEvent("a", 42, 1, 0.0))
    machine.feed(KeyEvent("b", 29, 1, 0.0))
    assert machine.keys_down() == {42, 29}
    machine.feed(DeviceRemoved("a", 1.0))
    assert machine.keys_down() == {29}


def test_other_values_forwarded_and_empty_combo_refused() -> None:
    machine = TriggerMachine(combo=(110,))
    assert machine.feed(KeyEvent("a", 30, 5, 0.0)) == [Forward(KeyEvent("a", 30, 5, 0.0))]
    with pytest.raises(ValueError):
        TriggerMachine(combo=())


def test_escape_cancels_only_while_recording_or_busy() -> None:
    machine = TriggerMachine(combo=(ecodes.KEY_INSERT,))
    dev = "/dev/input/event3"
    esc_down = KeyEvent(dev, ecodes.KEY_ESC, 1, 0.0)
    assert machine.feed(esc_down) == [Forward(esc_down)]  # idle: an ordinary key
    machine.feed(KeyEvent(dev, ecodes.KEY_ESC, 0, 0.1))
    machine.set_busy(True)  # recording over, text still being typed
    assert machine.feed(KeyEvent(dev, ecodes.KEY_ESC, 1, 1.0)) == [CancelDictation(1.0)]
    assert machine.feed(KeyEvent(dev, ecodes.KEY_ESC, 2, 1.5)) == []
    assert machine.feed(KeyEvent(dev, ecodes.KEY_ESC, 0, 2.0)) == []


def test_escape_as_trigger_key_does_not_cancel() -> None:
    machine = TriggerMachine(combo=(ecodes.KEY_ESC,))
    assert machine.cancel_key is None
    assert machine.feed(KeyEvent("d", ecodes.KEY_ESC, 1, 0.0)) == [StartRecording(0.0)]
