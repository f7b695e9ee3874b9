"""The typing thread of one dictation: runs ``LiveTypingMachine``'s decisions.

Pieces arrive from the connection's reader thread (live) or from the session at the end
(type-at-release); this thread types them so that neither the audio nor the key loop
ever waits for the keyboard. It holds the service's typing lock from its first key to
its last, so two dictations never mix their characters.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from evdev import ecodes

from whisperd.keys.livetype import (
    BACKSPACE,
    Action,
    Cancel,
    Done,
    Drop,
    Event,
    Finished,
    KeysHeld,
    LiveTypingMachine,
    Piece,
    Tick,
    Typed,
    TypeText,
)
from whisperd.keys.typer import TypeReport

if TYPE_CHECKING:
    from whisperd.keys.shaping import KeysShaper

log = logging.getLogger(__name__)

# How often held modifiers are looked at while text waits for them.
KEYS_POLL_SECONDS = 0.02
IDLE_POLL_SECONDS = 0.1


class TextTyper(Protocol):
    def type_text(
        self,
        text: str,
        cancel: threading.Event | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> TypeReport: ...

    def tap(
        self,
        code: int,
        times: int,
        cancel: threading.Event | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class ToShape:
    """A committed piece for the ``[text]`` rules; shaped in the typist thread."""

    text: str
    final: bool


class Typist(threading.Thread):
    def __init__(
        self,
        typer: TextTyper,
        keys_held: Callable[[], bool],
        lock: threading.Lock,
        cancelled: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        shaper: KeysShaper | None = None,
    ) -> None:
        super().__init__(name="whisperd-keys-typist", daemon=True)
        self.shaper = shaper
        self.typer = typer
        self.keys_held = keys_held
        self.lock = lock
        self.cancelled = cancelled
        self.clock = clock
        self.machine = LiveTypingMachine()
        self.report = TypeReport()
        self.dropped = 0
        self.last_typed_at: float | None = None  # when the last character went out
        self._events: queue.Queue[Event | ToShape] = queue.Queue()

    # -- from other threads
    def piece(self, text: str, final: bool = False) -> None:
        """A committed piece (``final``: the dictation's last). With ``[text]`` rules it
        is shaped in this thread, which alone uses the Shaper while it types."""
        if self.shaper is None:
            self._events.put(Piece(text.replace(BACKSPACE, "")))  # never a key press
        else:
            self._events.put(ToShape(text, final))

    def finish(self) -> None:
        self._events.put(Finished(self.clock()))

    def cancel(self) -> None:
        self.cancelled.set()
        self._events.put(Cancel(self.clock()))

    # -- the thread
    def run(self) -> None:
        with self.lock:
            try:
                self._loop()
            except Exception as exc:  # noqa: BLE001 - a thread must report, never die silently
                log.error("typing failed: %s", exc)

    def _loop(self) -> None:
        while not self.machine.done:
            wait = KEYS_POLL_SECONDS if self.machine.waiting_for_keys else IDLE_POLL_SECONDS
            try:
                item: Event | ToShape | None = self._events.get(timeout=wait)
            except queue.Empty:
                item = None
            event = self._shape(item) if isinstance(item, ToShape) else item
            now = self.clock()
            self._run(self.machine.feed(KeysHeld(self.keys_held(), now)))
            if event is not None:
                self._run(self.machine.feed(event))
            self._run(self.machine.feed(Tick(now)))

    def _shape(self, item: ToShape) -> Event | None:
        if self.shaper is None or self.cancelled.is_set():
            return None
        return self.shaper.feed(item.text, item.final)

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, TypeText):
                self._run(self.machine.feed(Typed(self._type(action.text))))
            elif isinstance(action, Drop):
                self.dropped += action.chars
                if action.reason == "keys_held":
                    log.warning("modifier keys still held: %d characters not typed", action.chars)
                else:
                    log.info("dictation cancelled: %d characters not typed", action.chars)
            elif isinstance(action, Done):
                return

    def _type(self, text: str) -> int:
        """Type ``text`` (BACKSPACE characters are taps of the BackSpace key); returns
        how many of its characters went out."""
        consumed = 0
        while consumed < len(text):
            rest = text[consumed:]
            if rest[0] == BACKSPACE:
                run = len(rest) - len(rest.lstrip(BACKSPACE))
                done = self.typer.tap(
                    ecodes.KEY_BACKSPACE, run, cancel=self.cancelled, interrupt=self.keys_held
                )
                self.report.consumed += done
            else:
                run = rest.find(BACKSPACE) if BACKSPACE in rest else len(rest)
                done = self._type_text(rest[:run])
            consumed += done
            if done < run:
                break
        if consumed:
            self.last_typed_at = self.clock()
        return consumed

    def _type_text(self, text: str) -> int:
        report = self.typer.type_text(text, cancel=self.cancelled, interrupt=self.keys_held)
        if report.consumed:
            self.last_typed_at = self.clock()
        total = self.report
        total.typed += report.typed
        total.fallback += report.fallback
        total.skipped += report.skipped
        total.consumed += report.consumed
        total.methods += report.methods
        return report.consumed
