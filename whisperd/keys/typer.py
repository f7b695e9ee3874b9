"""Typing text through the virtual keyboard with the user's layout.

Characters the layout cannot produce go through a fallback (``unicode``: Ctrl+Shift+U,
hex, Space as GTK and IBus understand it; ``clipboard``: copy then a paste key; ``skip``).
A character is never dropped silently: every fallback and every skip is counted and
logged, the character itself only when ``debug_log_text`` is on.
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from evdev import ecodes

from whisperd.keys.layout import CharMap, KeyStroke
from whisperd.keys.virtual import VirtualKeyboard

log = logging.getLogger(__name__)


class Fallback(enum.StrEnum):
    UNICODE = "unicode"
    CLIPBOARD = "clipboard"
    SKIP = "skip"


@dataclass
class TypeReport:
    typed: int = 0  # characters typed as key strokes of the layout
    fallback: int = 0  # characters entered through the fallback
    skipped: int = 0  # characters that could not be entered at all
    consumed: int = 0  # characters of the text handled (all, unless typing was stopped)
    methods: list[str] = field(default_factory=list)  # fallbacks used, in order


class Clipboard(Protocol):
    def copy(self, text: str) -> bool: ...


class SystemClipboard:
    """wl-copy on Wayland, xclip or xsel on X11."""

    def copy(self, text: str) -> bool:
        for argv in self._commands():
            try:
                subprocess.run(argv, input=text.encode(), timeout=3, check=True)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("clipboard command %s failed: %s", argv[0], exc)
                continue
            return True
        return False

    @staticmethod
    def _commands() -> list[list[str]]:
        found: list[list[str]] = []
        if os.environ.get("WAYLAND_DISPLAY") and shutil.which("wl-copy"):
            found.append(["wl-copy"])
        if os.environ.get("DISPLAY"):
            if shutil.which("xclip"):
                found.append(["xclip", "-selection", "clipboard"])
            if shutil.which("xsel"):
                found.append(["xsel", "--clipboard", "--input"])
        return found


class Typer:
    def __init__(
        self,
        keyboard: VirtualKeyboard,
        charmap: CharMap,
        fallback: Fallback = Fallback.UNICODE,
        delay: float = 0.002,
        paste_combo: tuple[int, ...] = (ecodes.KEY_LEFTCTRL, ecodes.KEY_V),
        clipboard: Clipboard | None = None,
        sleep: Callable[[float], None] = time.sleep,
        debug_log_text: bool = False,
    ) -> None:
        self.keyboard = keyboard
        self.charmap = charmap
        self.fallback = fallback
        self.delay = delay
        self.paste_combo = paste_combo
        self.clipboard = clipboard if clipboard is not None else SystemClipboard()
        self._sleep = sleep
        self._debug = debug_log_text
        self._pressed: list[int] = []

    def type_text(
        self,
        text: str,
        cancel: threading.Event | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> TypeReport:
        """Type ``text``; stop before the next character once ``cancel`` is set or
        ``interrupt()`` is true (a modifier was pressed: the caller types the rest
        later). ``report.consumed`` says how far it got."""
        report = TypeReport()
        try:
            pending: list[str] = []  # a run of characters waiting for the clipboard
            for char in text:
                if cancel is not None and cancel.is_set():
                    log.warning("typing cancelled")
                    break
                if interrupt is not None and interrupt():
                    break
                report.consumed += 1
                stroke = self.charmap.stroke(char)
                if stroke is not None:
                    self._flush_clipboard(pending, report)
                    self._stroke(stroke)
                    report.typed += 1
                elif self.fallback is Fallback.CLIPBOARD:
                    pending.append(char)
                else:
                    self._fallback_char(char, report)
            self._flush_clipboard(pending, report)
        finally:
            self._release_mine()
        return report

    def tap(
        self,
        code: int,
        times: int,
        cancel: threading.Event | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> int:
        """Press and release the key ``code`` (Enter, BackSpace) ``times`` times, with the
        typing delay; stops like ``type_text``. Returns how many taps went out."""
        done = 0
        try:
            for _ in range(times):
                if (cancel is not None and cancel.is_set()) or (interrupt and interrupt()):
                    break
                self._combo((code,))
                done += 1
        finally:
            self._release_mine()
        return done

    def _fallback_char(self, char: str, report: TypeReport) -> None:
        if self.fallback is Fallback.UNICODE and self._unicode(char):
            report.fallback += 1
            report.methods.append("unicode")
            self._note("unicode entry", char)
            return
        report.skipped += 1
        report.methods.append("skip")
        self._note("skipped", char)

    def _flush_clipboard(self, pending: list[str], report: TypeReport) -> None:
        if not pending:
            return
        chunk = "".join(pending)
        pending.clear()
        if self.clipboard.copy(chunk):
            self._combo(self.paste_combo)
            report.fallback += len(chunk)
            report.methods.append("clipboard")
            self._note("pasted through the clipboard", chunk)
        else:
            report.skipped += len(chunk)
            report.methods.append("skip")
            self._note("skipped (no clipboard tool: install wl-clipboard or xclip)", chunk)

    def _unicode(self, char: str) -> bool:
        digits = f"{ord(char):x}"
        strokes = [self.charmap.stroke(d) for d in digits]
        if any(s is None or s.modifiers for s in strokes):
            return False  # this layout cannot type the hex digits (e.g. a-f on ru)
        u_key = self.charmap.keysym_stroke("u", ecodes.KEY_U).code
        self._combo((ecodes.KEY_LEFTCTRL, ecodes.KEY_LEFTSHIFT, u_key))
        for stroke in strokes:
            assert stroke is not None
            self._stroke(stroke)
        self._stroke(KeyStroke(ecodes.KEY_SPACE))
        return True

    def _note(self, what: str, chars: str) -> None:
        if self._debug:
            log.info("%d character(s) %s: %r", len(chars), what, chars)
        else:
            log.info("%d character(s) %s", len(chars), what)

    def _stroke(self, stroke: KeyStroke) -> None:
        self._combo((*stroke.modifiers, stroke.code))

    def _combo(self, codes: tuple[int, ...]) -> None:
        for code in codes:
            self._press(code)
        for code in reversed(codes):
            self._release(code)

    def _press(self, code: int) -> None:
        self.keyboard.emit(code, 1)
        self._pressed.append(code)
        self._sleep(self.delay)

    def _release(self, code: int) -> None:
        self.keyboard.emit(code, 0)
        if code in self._pressed:
            self._pressed.remove(code)
        self._sleep(self.delay)

    def _release_mine(self) -> None:
        # After an exception mid-stroke: let go of whatever this typer still holds.
        while self._pressed:
            code = self._pressed.pop()
            try:
                self.keyboard.emit(code, 0)
            except OSError as exc:
                log.error("could not release a typed key: %s", exc)
