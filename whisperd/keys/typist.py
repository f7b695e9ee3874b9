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
from typing import Protocol

from whisperd.keys.livetype import (
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


class Typist(threading.Thread):
    def __init__(
        self,
        typer: TextTyper,
        keys_held: Callable[[], bool],
        lock: threading.Lock,
        cancelled: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="whisperd-keys-typist", daemon=True)
        self.typer = typer
        self.keys_held = keys_held
        self.lock = lock
        self.cancelled = cancelled
        self.clock = clock
        self.machine = LiveTypingMachine()
        self.report = TypeReport()
        self.dropped = 0
        self.last_typed_at: float | None = None  # when the last character went out
        self._events: queue.Queue[Event] = queue.Queue()

    # -- from other threads
    def piece(self, text: str) -> None:
        self._events.put(Piece(text))

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
                event: Event | None = self._events.get(timeout=wait)
            except queue.Empty:
                event = None
            now = self.clock()
            self._run(self.machine.feed(KeysHeld(self.keys_held(), now)))
            if event is not None:
                self._run(self.machine.feed(event))
            self._run(self.machine.feed(Tick(now)))

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
