"""The virtual keyboard: one uinput device for the whole life of the service.

Everything we type, and every key we pass on while the physical keyboards are grabbed, goes
through it. It remembers which keys it holds so that ``release_all()`` can let go of them
on exit, on SIGTERM and on errors. On SIGKILL the kernel destroys the uinput device when
its file descriptor closes, and destroying an input device releases its keys: nothing can
stay stuck.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from evdev import ecodes

log = logging.getLogger(__name__)

# The name (and phys) the watcher recognises so that we never read our own output.
VIRTUAL_NAME = "whisperd virtual keyboard"
VIRTUAL_PHYS = "whisperd/virtual-keyboard"

# Every keyboard key the kernel knows, without the BTN_* ranges: a device with buttons
# would be taken for a mouse or joystick by libinput.
KEYBOARD_CODES: tuple[int, ...] = tuple(
    code for code in range(1, 0x2FF) if not (0x100 <= code < 0x160 or 0x2C0 <= code < 0x2E8)
)


class UinputUnavailable(Exception):
    """/dev/uinput cannot be opened; the message says how to fix it."""


class VirtualKeyboard(Protocol):
    def emit(self, code: int, value: int) -> None: ...

    def held(self) -> frozenset[int]: ...

    def release_all(self) -> None: ...

    def close(self) -> None: ...


class _TrackingKeyboard:
    """Serialises writers (typing thread and forwarding loop) and tracks held keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[int] = set()
        self._closed = False

    def emit(self, code: int, value: int) -> None:
        with self._lock:
            if self._closed:
                return
            self._write(code, value)
            if value == 0:
                self._held.discard(code)
            elif value == 1:
                self._held.add(code)

    def held(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._held)

    def release_all(self) -> None:
        with self._lock:
            if self._closed:
                return
            for code in sorted(self._held):
                try:
                    self._write(code, 0)
                except OSError as exc:  # keep releasing the others
                    log.error("could not release a key on the virtual keyboard: %s", exc)
            self._held.clear()

    def close(self) -> None:
        self.release_all()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._destroy()

    def _write(self, code: int, value: int) -> None:
        raise NotImplementedError

    def _destroy(self) -> None:
        raise NotImplementedError


class RecordingKeyboard(_TrackingKeyboard):
    """Test double: remembers every (code, value) instead of writing to the kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[int, int]] = []
        self.destroyed = False

    def _write(self, code: int, value: int) -> None:
        self.events.append((code, value))

    def _destroy(self) -> None:
        self.destroyed = True


class PyUinputKeyboard(_TrackingKeyboard):
    """python-uinput backend (the project's choice)."""

    def __init__(self) -> None:
        super().__init__()
        try:
            import uinput  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise UinputUnavailable(f"python-uinput is not installed ({exc})") from None
        try:
            self._device: Any = uinput.Device(
                [(ecodes.EV_KEY, code) for code in KEYBOARD_CODES],
                name=VIRTUAL_NAME,
                bustype=ecodes.BUS_VIRTUAL,
            )
        except OSError as exc:
            raise UinputUnavailable(_uinput_hint(exc)) from None

    def _write(self, code: int, value: int) -> None:
        self._device.emit((ecodes.EV_KEY, code), value, syn=True)

    def _destroy(self) -> None:
        self._device.destroy()


class EvdevUinputKeyboard(_TrackingKeyboard):
    """python-evdev backend: the same, plus a ``phys`` tag and a known device node."""

    def __init__(self) -> None:
        super().__init__()
        from evdev import UInput, UInputError

        try:
            self._device: Any = UInput(
                {ecodes.EV_KEY: list(KEYBOARD_CODES)},
                name=VIRTUAL_NAME,
                phys=VIRTUAL_PHYS,
                bustype=ecodes.BUS_VIRTUAL,
            )
        except (OSError, UInputError) as exc:
            raise UinputUnavailable(_uinput_hint(exc)) from None

    def _write(self, code: int, value: int) -> None:
        self._device.write(ecodes.EV_KEY, code, value)
        self._device.syn()

    def _destroy(self) -> None:
        self._device.close()


def _uinput_hint(exc: BaseException) -> str:
    return (
        f"cannot create the virtual keyboard through /dev/uinput ({exc}). Load the module "
        "(`sudo modprobe uinput`, permanently with packaging/modules-load.d/whisperd.conf) and "
        "install packaging/60-whisperd-uinput.rules so the logged-in user may open it; "
        "`whisperctl doctor` checks both"
    )


def open_virtual_keyboard(backend: str = "auto") -> VirtualKeyboard:
    """``python-uinput``, ``evdev`` or ``auto`` (python-uinput, else evdev)."""
    if backend == "evdev":
        return EvdevUinputKeyboard()
    if backend == "python-uinput":
        return PyUinputKeyboard()
    try:
        return PyUinputKeyboard()
    except UinputUnavailable as first:
        if "not installed" not in str(first):
            raise
        log.info("python-uinput is not installed; using python-evdev's UInput")
        return EvdevUinputKeyboard()
