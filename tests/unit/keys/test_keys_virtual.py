"""The two uinput backends against doubles of their libraries (no /dev/uinput here)."""

from __future__ import annotations

import sys
import types
from typing import Any

import evdev
import pytest
from evdev import ecodes

from whisperd.keys import virtual
from whisperd.keys.virtual import (
    KEYBOARD_CODES,
    VIRTUAL_NAME,
    VIRTUAL_PHYS,
    UinputUnavailable,
    open_virtual_keyboard,
)


class FakePyUinputDevice:
    instances: list[FakePyUinputDevice] = []

    def __init__(self, events: list[tuple[int, int]], name: str, bustype: int) -> None:
        self.events_enabled, self.name, self.bustype = events, name, bustype
        self.emitted: list[tuple[tuple[int, int], int, bool]] = []
        self.destroyed = False
        FakePyUinputDevice.instances.append(self)

    def emit(self, event: tuple[int, int], value: int, syn: bool = True) -> None:
        self.emitted.append((event, value, syn))

    def destroy(self) -> None:
        self.destroyed = True


@pytest.fixture()
def fake_pyuinput(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("uinput")
    module.Device = FakePyUinputDevice  # type: ignore[attr-defined]
    FakePyUinputDevice.instances = []
    monkeypatch.setitem(sys.modules, "uinput", module)
    return module


def test_python_uinput_backend(fake_pyuinput: types.ModuleType) -> None:
    keyboard = open_virtual_keyboard("python-uinput")
    [device] = FakePyUinputDevice.instances
    assert device.name == VIRTUAL_NAME and device.bustype == ecodes.BUS_VIRTUAL
    codes = {code for _, code in device.events_enabled}
    assert ecodes.KEY_A in codes and ecodes.KEY_INSERT in codes
    assert ecodes.BTN_LEFT not in codes, "no buttons: it must not look like a mouse"
    keyboard.emit(ecodes.KEY_A, 1)
    keyboard.close()
    assert device.emitted == [((1, ecodes.KEY_A), 1, True), ((1, ecodes.KEY_A), 0, True)]
    assert device.destroyed


def test_python_uinput_without_dev_uinput(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("uinput")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(19, "Failed to open the uinput device: No such device")

    module.Device = fail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uinput", module)
    with pytest.raises(UinputUnavailable, match="modprobe uinput"):
        open_virtual_keyboard("auto")


def test_evdev_backend_and_auto_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    written: list[tuple[int, int, int]] = []

    class FakeUInput:
        def __init__(self, events: dict[int, list[int]], **kwargs: Any) -> None:
            made.append({"events": events, **kwargs})

        def write(self, etype: int, code: int, value: int) -> None:
            written.append((etype, code, value))

        def syn(self) -> None:
            written.append((0, 0, 0))

        def close(self) -> None:
            made[-1]["closed"] = True

    monkeypatch.setattr(evdev, "UInput", FakeUInput)
    monkeypatch.setitem(sys.modules, "uinput", None)  # python-uinput not installed
    keyboard = open_virtual_keyboard("auto")
    assert isinstance(keyboard, virtual.EvdevUinputKeyboard)
    assert made[0]["name"] == VIRTUAL_NAME and made[0]["phys"] == VIRTUAL_PHYS
    assert made[0]["events"] == {ecodes.EV_KEY: list(KEYBOARD_CODES)}
    keyboard.emit(ecodes.KEY_B, 1)
    keyboard.close()
    assert written == [(1, ecodes.KEY_B, 1), (0, 0, 0), (1, ecodes.KEY_B, 0), (0, 0, 0)]
    assert made[0]["closed"]
