"""Physical keyboards through evdev: enumeration, hot-plug, optional grabbing.

The source yields the pure ``KeyEvent`` / ``DeviceRemoved`` values of ``trigger``; tests
replace it with a double that replays recorded sequences.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import select
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from evdev import InputDevice, ecodes

from whisperd.keys.trigger import KEY_DOWN, KEY_UP, DeviceRemoved, InputEvent, KeyEvent
from whisperd.keys.virtual import VIRTUAL_NAME, VIRTUAL_PHYS

log = logging.getLogger(__name__)

# A device we grab must be a plain keyboard: we can only pass on key events, so grabbing
# a node that also moves a pointer (a keyboard with a touchpad on the same node) would
# swallow the pointer.
_FORWARDABLE_TYPES = {ecodes.EV_SYN, ecodes.EV_KEY, ecodes.EV_MSC, ecodes.EV_LED, ecodes.EV_REP}


class KeyboardSource(Protocol):
    def poll(self, timeout: float) -> list[InputEvent]: ...

    def is_grabbed(self, device: str) -> bool: ...

    def devices(self) -> list[str]: ...

    def close(self) -> None: ...


def is_own_device(name: str, phys: str) -> bool:
    return name == VIRTUAL_NAME or phys == VIRTUAL_PHYS


def is_keyboard(capabilities: Mapping[int, Sequence[int]], required: Iterable[int]) -> bool:
    keys = set(capabilities.get(ecodes.EV_KEY, ()))
    return bool(keys) and all(code in keys for code in required)


def can_grab(capabilities: Mapping[int, Sequence[int]]) -> bool:
    if set(capabilities) - _FORWARDABLE_TYPES:
        return False
    keys = capabilities.get(ecodes.EV_KEY, ())
    return not any(0x100 <= code < 0x160 or 0x2C0 <= code < 0x2E8 for code in keys)


class EvdevKeyboardSource:
    """Every keyboard under /dev/input that has the trigger keys, rescanned for hot-plug."""

    def __init__(
        self,
        required_codes: Sequence[int],
        grab: bool = False,
        only: Sequence[str] = (),
        rescan_interval: float = 1.0,
        pattern: str = "/dev/input/event*",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.required = tuple(required_codes)
        self.grab = grab
        self.only = tuple(only)
        self.rescan_interval = rescan_interval
        self.pattern = pattern
        self.clock = clock
        self._open: dict[str, InputDevice[Any]] = {}
        self._by_fd: dict[int, str] = {}
        self._pending_grab: set[str] = set()
        self._grabbed: set[str] = set()
        # Grabbed keyboards removed during this poll: the releases of their held keys
        # (trigger._device_removed) still go to applications through the virtual keyboard.
        self._just_removed: set[str] = set()
        self._ignored: set[str] = set()
        self._denied: set[str] = set()
        self._last_scan = -1e9
        self._held: dict[str, set[int]] = {}  # the keys our events say are down, per device
        self._dropping: set[str] = set()  # devices whose events were dropped (SYN_DROPPED)

    def devices(self) -> list[str]:
        return sorted(self._open)

    def is_grabbed(self, device: str) -> bool:
        return device in self._grabbed or device in self._just_removed

    def poll(self, timeout: float) -> list[InputEvent]:
        now = self.clock()
        events: list[InputEvent] = []
        self._just_removed.clear()
        if now - self._last_scan >= self.rescan_interval:
            self._last_scan = now
            events += self.rescan()
        self._try_grabs()
        if not self._by_fd:
            time.sleep(timeout)
            return events
        ready, _, _ = select.select(list(self._by_fd), [], [], timeout)
        for fd in ready:
            path = self._by_fd.get(fd)
            if path is not None:
                events += self._read(path)
        return events

    def rescan(self) -> list[InputEvent]:
        """Opens new keyboards; those whose node is gone are removed (before a read saw
        the device go: its held keys and a recording it held end all the same)."""
        present = set(glob.glob(self.pattern))
        removed: list[InputEvent] = []
        for path in sorted(set(self._open) - present):
            self._drop(path)
            removed.append(DeviceRemoved(path, self.clock()))
        self._ignored &= present
        self._denied &= present
        # Denied nodes are retried: a hot-plugged node is root-only for the few
        # milliseconds before udev gives it to group 'input'.
        for path in sorted(present - set(self._open) - self._ignored):
            self._consider(path)
        return removed

    def _consider(self, path: str) -> None:
        try:
            device = InputDevice(path)
        except PermissionError:
            if path not in self._denied:  # say it once per node, not every second
                self._denied.add(path)
                log.warning(
                    "cannot read %s (permission denied): add yourself to the 'input' group", path
                )
            return
        except OSError:
            return  # vanished between listing and opening; the next scan decides
        caps = device.capabilities(absinfo=False)
        wanted = not is_own_device(device.name, device.phys or "") and is_keyboard(
            caps, self.required
        )
        if wanted and self.only:
            wanted = path in self.only or device.name in self.only
        if not wanted:
            self._ignored.add(path)
            device.close()
            return
        self._open[path] = device
        self._by_fd[device.fd] = path
        log.info("using keyboard %s (%s)", path, device.name)
        if self.grab:
            if can_grab(caps):
                self._pending_grab.add(path)
            else:
                log.warning("not grabbing %s: it is not a plain keyboard", path)

    def _try_grabs(self) -> None:
        # Grab only once no key is held: a key held at grab time would have its release
        # go to us, and the compositor would think it stays pressed.
        for path in sorted(self._pending_grab):
            device = self._open.get(path)
            if device is None:
                self._pending_grab.discard(path)
                continue
            try:
                if device.active_keys():
                    continue
                device.grab()
            except OSError as exc:
                self._pending_grab.discard(path)
                log.warning("cannot grab %s (%s); the trigger will reach applications", path, exc)
                continue
            self._pending_grab.discard(path)
            self._grabbed.add(path)
            log.info("grabbed %s", path)

    def _read(self, path: str) -> list[InputEvent]:
        device = self._open[path]
        events: list[InputEvent] = []
        try:
            for ev in device.read():
                events += self._take(path, device, ev.type, ev.code, ev.value)
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENODEV, errno.EIO, errno.EBADF):
                log.warning("reading %s failed: %s", path, exc)
            self._drop(path)
            events.append(DeviceRemoved(path, self.clock()))
        return events

    def _take(self, path: str, device: Any, kind: int, code: int, value: int) -> list[KeyEvent]:
        """One raw event. When we read too slowly the kernel drops events and says so
        (SYN_DROPPED): a lost release would leave a key held for applications, repeating.
        As libevdev does, the events up to the next SYN_REPORT are skipped, then the keys
        held are read from the device and the differences are sent as events."""
        if kind == ecodes.EV_SYN and code == ecodes.SYN_DROPPED:
            self._dropping.add(path)
            log.warning("keyboard %s: events were lost (read too slowly); resynchronising", path)
            return []
        if path in self._dropping:
            if kind != ecodes.EV_SYN or code != ecodes.SYN_REPORT:
                return []
            self._dropping.discard(path)
            return self._resync(path, set(device.active_keys()))
        if kind != ecodes.EV_KEY:
            return []
        held = self._held.setdefault(path, set())
        if value == KEY_UP:
            held.discard(code)
        elif value == KEY_DOWN:
            held.add(code)
        return [KeyEvent(path, code, value, self.clock())]

    def _resync(self, path: str, down: set[int]) -> list[KeyEvent]:
        held = self._held.setdefault(path, set())
        now = self.clock()
        events = [KeyEvent(path, code, KEY_UP, now) for code in sorted(held - down)]
        events += [KeyEvent(path, code, KEY_DOWN, now) for code in sorted(down - held)]
        held.clear()
        held.update(down)
        return events

    def _drop(self, path: str) -> None:
        self._held.pop(path, None)
        self._dropping.discard(path)
        device = self._open.pop(path, None)
        self._pending_grab.discard(path)
        if path in self._grabbed:
            self._grabbed.discard(path)
            self._just_removed.add(path)
        if device is None:
            return
        self._by_fd.pop(device.fd, None)
        try:
            device.close()
        except OSError:
            pass  # already gone with the hardware
        log.info("keyboard %s is gone", path)

    def ungrab_all(self) -> None:
        for path in sorted(self._grabbed):
            try:
                self._open[path].ungrab()
            except (OSError, KeyError):
                pass  # closing the descriptor below releases the grab anyway
        self._grabbed.clear()

    def close(self) -> None:
        self.ungrab_all()
        for path in list(self._open):
            self._drop(path)


def list_keyboards(required: Sequence[int] = (ecodes.KEY_INSERT,)) -> list[tuple[str, str]]:
    """(path, description) of every event device, for ``whisperd-keys --list-keyboards``."""
    found: list[tuple[str, str]] = []
    for path in sorted(glob.glob("/dev/input/event*"), key=_event_number):
        try:
            device = InputDevice(path)
        except OSError as exc:
            found.append((path, f"cannot open: {exc.strerror}"))
            continue
        caps = device.capabilities(absinfo=False)
        found.append((path, f"{device.name}: {_describe(caps, required, device)}"))
        device.close()
    return found


def _describe(
    caps: Mapping[int, Sequence[int]], required: Sequence[int], device: InputDevice[Any]
) -> str:
    if is_own_device(device.name, device.phys or ""):
        return "own virtual keyboard (ignored)"
    if not is_keyboard(caps, required):
        return "not used (no trigger key)"
    return "keyboard" + ("" if can_grab(caps) else " (not grabbable)")


def _event_number(path: str) -> int:
    digits = os.path.basename(path).removeprefix("event")
    return int(digits) if digits.isdigit() else 0
