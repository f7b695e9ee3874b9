"""The evdev keyboard source against fake device nodes: selection, hot-plug, grabbing."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from evdev import ecodes

from whisperd.keys import keyboard as kb
from whisperd.keys.keyboard import EvdevKeyboardSource, can_grab, is_keyboard
from whisperd.keys.trigger import DeviceRemoved, KeyEvent
from whisperd.keys.virtual import VIRTUAL_NAME

KEYBOARD_CAPS = {
    ecodes.EV_SYN: [0],
    ecodes.EV_KEY: [ecodes.KEY_A, ecodes.KEY_INSERT, ecodes.KEY_LEFTSHIFT],
    ecodes.EV_MSC: [ecodes.MSC_SCAN],
    ecodes.EV_LED: [0, 1],
}
MOUSE_CAPS = {ecodes.EV_KEY: [ecodes.BTN_LEFT], ecodes.EV_REL: [0, 1]}


class RawEvent:
    def __init__(self, type_: int, code: int, value: int) -> None:
        self.type, self.code, self.value = type_, code, value


class FakeDevice:
    registry: dict[str, dict[str, Any]] = {}

    def __init__(self, path: str) -> None:
        spec = self.registry[path]
        if spec.get("denied"):
            raise PermissionError(errno.EACCES, "Permission denied")
        self.path = path
        self.name = spec["name"]
        self.phys = spec.get("phys", "")
        self.caps = spec["caps"]
        self.spec = spec
        self.fd, self._write_fd = os.pipe()
        spec["device"] = self
        self.pending: list[RawEvent] = []
        self.grabbed = False
        self.closed = False

    def capabilities(self, absinfo: bool = True) -> dict[int, list[int]]:
        return self.caps

    def active_keys(self) -> list[int]:
        return list(self.spec.get("held", []))

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def push(self, *events: tuple[int, int, int]) -> None:
        self.pending += [RawEvent(*e) for e in events]
        os.write(self._write_fd, b"x")

    def read(self) -> list[RawEvent]:
        os.read(self.fd, 100)
        if self.spec.get("gone"):
            raise OSError(errno.ENODEV, "No such device")
        events, self.pending = self.pending, []
        return events

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)
            os.close(self._write_fd)


@pytest.fixture()
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(kb, "InputDevice", FakeDevice)
    FakeDevice.registry = {}

    def add(number: int, **spec: Any) -> str:
        path = str(tmp_path / f"event{number}")
        Path(path).touch()
        FakeDevice.registry[path] = spec
        return path

    add.pattern = str(tmp_path / "event*")  # type: ignore[attr-defined]
    return add


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_selects_keyboards_skips_own_and_mice(nodes: Any, caplog: pytest.LogCaptureFixture) -> None:
    kbd = nodes(3, name="AT keyboard", caps=KEYBOARD_CAPS)
    nodes(4, name="Mouse", caps=MOUSE_CAPS)
    nodes(5, name=VIRTUAL_NAME, caps=KEYBOARD_CAPS)
    nodes(6, name="Secret", caps=KEYBOARD_CAPS, denied=True)
    source = EvdevKeyboardSource([ecodes.KEY_INSERT], pattern=nodes.pattern)
    assert source.poll(0.01) == []
    assert source.devices() == [kbd]
    assert "add yourself to the 'input' group" in caplog.text
    source.close()


def test_events_hotplug_and_unplug(nodes: Any) -> None:
    clock = Clock()
    first = nodes(3, name="kbd", caps=KEYBOARD_CAPS)
    source = EvdevKeyboardSource(
        [ecodes.KEY_INSERT], pattern=nodes.pattern, clock=clock, rescan_interval=1.0
    )
    source.poll(0.01)
    dev = FakeDevice.registry[first]["device"]
    dev.push((ecodes.EV_MSC, ecodes.MSC_SCAN, 1), (ecodes.EV_KEY, ecodes.KEY_INSERT, 1), (0, 0, 0))
    assert source.poll(0.5) == [KeyEvent(first, ecodes.KEY_INSERT, 1, 0.0)]
    second = nodes(7, name="usb kbd", caps=KEYBOARD_CAPS)
    clock.now = 1.5
    source.poll(0.01)
    assert source.devices() == [first, second]
    FakeDevice.registry[first]["gone"] = True
    os.unlink(first)  # unplugged: udev removes the node
    dev.push()
    assert source.poll(0.5) == [DeviceRemoved(first, 1.5)]
    assert source.devices() == [second] and dev.closed
    os.unlink(second)  # its node went before a read saw the device go: removed all the same
    clock.now = 3.0
    assert source.poll(0.01) == [DeviceRemoved(second, 3.0)]
    assert source.devices() == []
    source.close()


def test_events_lost_by_the_kernel_are_made_up_from_the_keys_held(
    nodes: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """SYN_DROPPED: the kernel's buffer for us overflowed. The events up to the next
    SYN_REPORT are incomplete and skipped; the keys the device holds then are compared with
    those our events left down, and the differences are sent: A's lost release, B's press."""
    path = nodes(3, name="kbd", caps=KEYBOARD_CAPS)
    source = EvdevKeyboardSource([ecodes.KEY_INSERT], pattern=nodes.pattern, clock=Clock())
    source.poll(0.01)
    dev = FakeDevice.registry[path]["device"]
    dev.push((ecodes.EV_KEY, ecodes.KEY_A, 1), (ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
    assert source.poll(0.5) == [KeyEvent(path, ecodes.KEY_A, 1, 0.0)]
    FakeDevice.registry[path]["held"] = [ecodes.KEY_B]
    dev.push(
        (ecodes.EV_SYN, ecodes.SYN_DROPPED, 0),
        (ecodes.EV_KEY, ecodes.KEY_B, 1),  # after the drop, before the report: skipped
        (ecodes.EV_SYN, ecodes.SYN_REPORT, 0),
        (ecodes.EV_KEY, ecodes.KEY_C, 1),  # after it: as it comes
    )
    assert source.poll(0.5) == [
        KeyEvent(path, ecodes.KEY_A, 0, 0.0),
        KeyEvent(path, ecodes.KEY_B, 1, 0.0),
        KeyEvent(path, ecodes.KEY_C, 1, 0.0),
    ]
    assert "events were lost" in caplog.text
    source.close()


def test_grab_waits_until_keys_released(nodes: Any) -> None:
    path = nodes(3, name="kbd", caps=KEYBOARD_CAPS, held=[ecodes.KEY_ENTER])
    mouse_kbd = nodes(4, name="kbd+touchpad", caps={**KEYBOARD_CAPS, **MOUSE_CAPS})
    source = EvdevKeyboardSource([ecodes.KEY_INSERT], grab=True, pattern=nodes.pattern)
    source.poll(0.01)
    assert not source.is_grabbed(path), "Enter is still held: grabbing now would stick it"
    FakeDevice.registry[path]["held"] = []
    source.poll(0.01)
    assert source.is_grabbed(path) and FakeDevice.registry[path]["device"].grabbed
    assert not source.is_grabbed(mouse_kbd), "a node that also moves a pointer is never grabbed"
    source.close()
    assert not FakeDevice.registry[path]["device"].grabbed


def test_capability_predicates() -> None:
    assert is_keyboard(KEYBOARD_CAPS, [ecodes.KEY_INSERT])
    assert not is_keyboard(KEYBOARD_CAPS, [ecodes.KEY_F13])
    assert can_grab(KEYBOARD_CAPS) and not can_grab(MOUSE_CAPS)


def test_denied_node_retried_when_udev_fixes_permissions(
    nodes: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    path = nodes(3, name="kbd", caps=KEYBOARD_CAPS, denied=True)
    source = EvdevKeyboardSource(
        [ecodes.KEY_INSERT], pattern=nodes.pattern, clock=clock, rescan_interval=1.0
    )
    source.poll(0.01)
    clock.now = 1.0
    source.poll(0.01)
    assert caplog.text.count("permission denied") == 1
    FakeDevice.registry[path]["denied"] = False
    clock.now = 2.0
    source.poll(0.01)
    assert source.devices() == [path]
    source.close()


def test_a_grabbed_keyboard_unplugged_with_a_key_held_releases_it_for_applications(
    nodes: Any,
) -> None:
    """The source and the service together: the release the trigger machine makes for a
    removed keyboard's held key reaches the virtual keyboard (the source had already
    forgotten that it grabbed the keyboard, and the release was dropped)."""
    from tests.unit.keys.keys_fakes import FakeClient, FakeRecorder
    from whisperd.keys.config import KeysConfig
    from whisperd.keys.service import DictationService
    from whisperd.keys.trigger import TriggerMachine
    from whisperd.keys.virtual import RecordingKeyboard

    path = nodes(3, name="kbd", caps=KEYBOARD_CAPS)
    source = EvdevKeyboardSource(
        [ecodes.KEY_INSERT], grab=True, pattern=nodes.pattern, clock=Clock(), rescan_interval=1e9
    )
    keyboard = RecordingKeyboard()
    machine = TriggerMachine(combo=(ecodes.KEY_INSERT,))
    service = DictationService(
        machine, source, FakeRecorder([]), keyboard, None, FakeClient, KeysConfig(language="en")
    )
    service.step(source.poll(0.01))
    assert source.is_grabbed(path)
    device = FakeDevice.registry[path]["device"]
    device.push((ecodes.EV_KEY, ecodes.KEY_A, 1), (ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
    service.step(source.poll(0.5))
    assert keyboard.held() == {ecodes.KEY_A}
    FakeDevice.registry[path]["gone"] = True  # unplugged, no release read
    device.push()
    service.step(source.poll(0.5))
    assert keyboard.held() == frozenset(), keyboard.events
    source.poll(0.01)  # the next poll: forgotten
    assert not source.is_grabbed(path)
