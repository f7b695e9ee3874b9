"""The orchestrator: trigger -> recording -> streaming transcription -> typing.

At key-down the recording starts at once and a streaming transcription is opened on
whisperd, which makes the daemon load the model while the user speaks; audio chunks are
sent as they are recorded. Live (``[keys] live = true``): each piece of text the daemon
commits during the hold is typed at once; at key-up only the last piece is left.
Type-at-release (``live = false``): at key-up the stream is finished and the whole text
is typed. Either way typing waits while modifiers are held (livetype.py decides).

Threads: the main loop reads keyboards and drives the pure ``TriggerMachine`` (and passes
grabbed keys on, so it must never block); each recording runs in its own session thread,
its text is typed by its own ``Typist`` thread, and a live stream reads the daemon's
commit events in a reader thread of the client.

Desktop shortcuts (``whisperctl dictate``, docs/keys.md "Without the input group") reach
the main loop through ``dictate`` from the control socket's thread; they go through the
pure ``ShortcutPolicy`` (shortcuts.py), which also keeps typing away from the shortcut's
modifiers. Every change of the dictation's state goes to the ``StatusFeed``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from whisperd.config import TextConfig
from whisperd.control.protocol import Action as ControlAction
from whisperd.control.protocol import Code, ControlError
from whisperd.keys.audio import AudioRecorder
from whisperd.keys.feedback import Feedback
from whisperd.keys.keyboard import KeyboardSource
from whisperd.keys.keynames import MODIFIER_CODES
from whisperd.keys.session import Client, ClientFactory, Session
from whisperd.keys.shaping import KeysShaper
from whisperd.keys.shortcuts import ShortcutPolicy
from whisperd.keys.status import Cancelled, RecordingStarted, RecordingStopped, Status
from whisperd.keys.statusfeed import StatusFeed
from whisperd.keys.trigger import (
    Action,
    CancelDictation,
    Forward,
    KeyEvent,
    Panic,
    StartRecording,
    StopRecording,
    TriggerMachine,
)
from whisperd.keys.typer import Typer
from whisperd.keys.typist import Typist
from whisperd.keys.virtual import VirtualKeyboard

# Client is part of this module's interface (main.py builds one).
__all__ = ["Client", "DictationService", "Session"]

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
COMMAND_WAIT = 5.0  # a control command waits this long for the main loop
BEGIN_WAIT = 5.0  # and a start this long for the microphone to open


class Settings(Protocol):
    min_recording: float
    debug_log_text: bool
    live: bool

    @property
    def options(self) -> dict[str, Any] | None: ...


class DictationService:
    def __init__(
        self,
        machine: TriggerMachine,
        source: KeyboardSource,
        recorder: AudioRecorder,
        keyboard: VirtualKeyboard | None,
        typer: Typer | None,
        client_factory: ClientFactory,
        settings: Settings,
        feedback: Feedback | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        text: TextConfig | None = None,
        shortcuts: ShortcutPolicy | None = None,
        status: StatusFeed | None = None,
    ) -> None:
        self.machine = machine
        self.source = source
        self.recorder = recorder
        self.keyboard = keyboard
        self.typer = typer
        self.client_factory = client_factory
        self.settings = settings
        self.feedback = feedback or Feedback()
        self.clock = clock
        self.sleep = sleep
        self.text = text or TextConfig()
        # The [text] rules, only when there are any: without them pieces are joined as
        # whisperd-keys always joined them (livetype.join_piece).
        active = self.text.rules().active or bool(self.text.hook)
        self.shaper = KeysShaper(self.text) if active else None
        self.stop_event = threading.Event()
        self.sessions: list[Session] = []
        self._current: Session | None = None
        self._keys_lock = threading.Lock()
        self._type_lock = threading.Lock()
        self.shortcuts = shortcuts or ShortcutPolicy()
        self.status = status or StatusFeed("")
        self._commands: queue.Queue[tuple[ControlAction, _Command]] = queue.Queue()

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.step(self.source.poll(POLL_SECONDS))
        finally:
            self.shutdown()

    def step(self, events: list[Any]) -> None:
        self._run_commands()
        for event in events:
            with self._keys_lock:
                actions = self.machine.feed(event)
            self._handle(actions)
        with self._keys_lock:
            actions = self.machine.tick(self.clock())
        self._handle(actions)
        self._stop_long_shortcut_recording()
        self.status.tick()

    def _handle(self, actions: Sequence[Action], by_shortcut: bool = False) -> None:
        for action in actions:
            if isinstance(action, Forward):
                self._forward(action.event)
            elif isinstance(action, StartRecording):
                self._start(action.time, by_shortcut)
            elif isinstance(action, StopRecording):
                self._stop(action.time, action.reason)
            elif isinstance(action, CancelDictation):
                self._cancel("whisperctl dictate cancel" if by_shortcut else "the cancel key")
            elif isinstance(action, Panic):
                log.warning("Backspace+Escape+Enter held: releasing the keyboards and exiting")
                self.stop_event.set()

    def _forward(self, event: KeyEvent) -> None:
        if event.value == 1 and self.shaper is not None and event.code not in self.machine.combo:
            self.shaper.user_typed()  # "scratch that" must not erase where the cursor went
        if self.keyboard is not None and self.source.is_grabbed(event.device):
            self.keyboard.emit(event.code, event.value)

    def _start(self, when: float, by_shortcut: bool = False) -> None:
        if self._current is not None:
            return  # already recording (a shortcut and the trigger key both started one)
        session = Session(self, when)
        session.by_shortcut = by_shortcut
        self._current = session
        self.sessions = [s for s in self.sessions if s.is_alive()] + [session]
        log.info("recording started%s", " (shortcut)" if by_shortcut else "")
        self.status.apply(RecordingStarted())
        self.feedback.started()
        with self._keys_lock:
            self.machine.set_busy(True)
        session.start()

    def _stop(self, when: float, reason: str) -> None:
        session, self._current = self._current, None
        if session is None:
            return
        session.stop(when, reason)
        self.status.apply(RecordingStopped())
        self.feedback.stopped()

    def _cancel(self, by: str) -> None:
        """The cancel key or command: the recording (if any) and all typing to come stop."""
        current, self._current = self._current, None
        log.info("dictation cancelled by %s", by)
        self.status.apply(Cancelled())
        for session in self.sessions:
            if session.is_alive():
                session.cancel()
        if current is not None:
            self.feedback.stopped()

    # -- desktop shortcuts (the control socket) ---------------------------------------
    def dictate(self, action: ControlAction) -> str:
        """``whisperctl dictate ACTION``, from the control socket's thread: done by the
        main loop; returns the state after it. A start waits for the microphone."""
        if self.stop_event.is_set():
            raise ControlError(Code.UNAVAILABLE, "whisperd-keys is stopping")
        command = _Command()
        self._commands.put((action, command))
        wake = getattr(self.source, "wake", None)
        if callable(wake):
            wake()
        deadline = time.monotonic() + COMMAND_WAIT
        while not command.done.wait(0.1):
            if self.stop_event.is_set():  # the main loop is gone: do not hold the exit up
                raise ControlError(Code.UNAVAILABLE, "whisperd-keys is stopping")
            if time.monotonic() >= deadline:
                raise ControlError(Code.BUSY, "whisperd-keys did not take the command in time")
        started = command.started
        if started is not None and started.began.wait(BEGIN_WAIT) and started.begin_error:
            raise ControlError(Code.UNAVAILABLE, f"cannot record: {started.begin_error}")
        return self.status.state

    def snapshot(self) -> Status:
        return self.status.snapshot()

    def _run_commands(self) -> None:
        while True:
            try:
                action, command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                before = self._current
                with self._keys_lock:
                    actions = self.shortcuts.command(action, before is not None, self.clock())
                self._handle(actions, by_shortcut=True)
                if self._current is not before:
                    command.started = self._current
            finally:
                command.done.set()

    def _stop_long_shortcut_recording(self) -> None:
        # The trigger machine stops the recordings it started at max_recording; these
        # it never saw.
        current, now = self._current, self.clock()
        if current is not None and current.by_shortcut:
            if now - current.started >= self.machine.max_recording:
                self._stop(now, "max_length")

    def session_ended(self, ended: Session) -> None:
        with self._keys_lock:
            self.machine.set_busy(
                # `finished`, not is_alive(): a session says it ended from its own
                # thread, and two ending together each saw the other still alive.
                any(not s.finished for s in self.sessions if s is not ended)
                or (self._current is not None and self._current is not ended)
            )

    # -- typing (typist threads) ------------------------------------------------------
    def keys_down(self) -> frozenset[int]:
        with self._keys_lock:
            return self.machine.keys_down()

    def typing_blocked(self) -> bool:
        """Keys are held that would change what typed keys mean: modifiers and the other
        keys of a chord. Live typing goes on while the main trigger key is held (the
        keyboards are grabbed: applications never see it); type-at-release also waits for
        the trigger, as it always did."""
        blocking = MODIFIER_CODES | set(self.machine.combo[:-1])
        if not self.settings.live:
            blocking |= {self.machine.main_key}
        current = self._current
        with self._keys_lock:
            settling = self.shortcuts.typing_blocked(
                self.clock(), current is not None and current.by_shortcut
            )
        return bool(self.keys_down() & blocking) or settling or self.stop_event.is_set()

    def new_typist(self, cancelled: threading.Event) -> Typist | None:
        if self.typer is None:
            return None
        return Typist(
            self.typer, self.typing_blocked, self._type_lock, cancelled, self.clock, self.shaper
        )

    def stream_options(self) -> dict[str, Any]:
        """The options of each stream: ``[keys]``'s and the ``[text]`` vocabulary."""
        options = dict(self.settings.options or {})
        vocabulary = self.text.request_vocabulary()
        if vocabulary:
            options["vocabulary"] = vocabulary
        return options

    # -- shutdown ----------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel everything and make sure no key stays pressed."""
        self.stop_event.set()
        for session in self.sessions:
            session.cancel()
        for session in self.sessions:
            session.join(timeout=2.0)
        if self.keyboard is not None:
            self.keyboard.release_all()
        self.source.close()


class _Command:
    """A control command on its way through the main loop."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.started: Session | None = None
