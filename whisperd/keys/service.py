"""The orchestrator: trigger -> recording -> streaming transcription -> typing.

At key-down the recording starts at once and a streaming transcription is opened on
whisperd, which makes the daemon load the model while the user speaks; audio chunks are
sent as they are recorded. At key-up the stream is finished and the text is typed once
the user has let go of the trigger and every modifier.

Threads: the main loop reads keyboards and drives the pure ``TriggerMachine`` (and passes
grabbed keys on, so it must never block); each recording runs in its own session thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from whisperd.keys.audio import AudioRecorder, Capture
from whisperd.keys.feedback import Feedback
from whisperd.keys.keyboard import KeyboardSource
from whisperd.keys.keynames import MODIFIER_CODES
from whisperd.keys.trigger import (
    Action,
    Forward,
    KeyEvent,
    Panic,
    StartRecording,
    StopRecording,
    TriggerMachine,
)
from whisperd.keys.typer import Typer
from whisperd.keys.virtual import VirtualKeyboard

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
# How long typing waits for the user to let go of modifiers before giving up: typing
# while Ctrl is held would fire shortcuts instead of text.
RELEASE_WAIT_SECONDS = 30.0


class Stream(Protocol):
    def send(self, pcm: bytes) -> None: ...

    def finish(
        self, on_segment: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]: ...

    def cancel(self) -> None: ...


class Client(Protocol):
    def start_stream(
        self,
        sample_rate: int = 16000,
        channels: int = 1,
        encoding: str = "s16le",
        options: dict[str, Any] | None = None,
    ) -> Stream: ...

    def close(self) -> None: ...


ClientFactory = Callable[[], Client]


class Session(threading.Thread):
    """One recording, from key-down to typed text.

    Everything that may block (opening the microphone, connecting, typing) happens in
    this thread: the main loop passes grabbed keys on and must never wait.
    """

    def __init__(self, service: DictationService, started: float) -> None:
        super().__init__(name="whisperd-keys-session", daemon=True)
        self.service = service
        self.started = started
        self.capture: Capture | None = None
        self.released_at: float | None = None
        self.reason = ""
        self.cancelled = threading.Event()
        self._stream: Stream | None = None
        self._lock = threading.Lock()
        self._stop_requested = False

    def stop(self, when: float, reason: str) -> None:
        with self._lock:
            self.released_at = when
            self.reason = reason
            self._stop_requested = True
            capture = self.capture
        if capture is not None:
            capture.stop()

    def cancel(self) -> None:
        self.cancelled.set()
        self.stop(self.released_at or 0.0, self.reason or "cancelled")
        self.cancel_stream()

    def cancel_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.cancel()
            except Exception as exc:  # noqa: BLE001 - shutting down: log whatever it was
                log.debug("cancelling the stream failed: %s", exc)

    def _begin(self) -> Capture | None:
        service = self.service
        try:
            capture = service.recorder.begin()
        except Exception as exc:  # noqa: BLE001 - report any audio failure, keep running
            log.error("cannot start recording: %s", _describe(exc))
            service.feedback.error("cannot record")
            return None
        with self._lock:
            self.capture = capture
            stop_now = self._stop_requested
        if stop_now:  # the key was released while the microphone was opening
            capture.stop()
        return capture

    def run(self) -> None:
        service = self.service
        capture = self._begin()
        if capture is None:
            return
        try:
            text = self._transcribe(capture)
            if text and not self.cancelled.is_set():
                service.type_result(text, self)
        except Exception as exc:  # noqa: BLE001 - a thread must report, never die silently
            if self.cancelled.is_set():
                log.debug("session ended by shutdown: %s", _describe(exc))
                return
            log.error("dictation failed: %s", _describe(exc))
            service.feedback.error(_describe(exc))
            self.cancel_stream()
            self._drain(capture)

    def _transcribe(self, capture: Capture) -> str:
        service = self.service
        config = service.settings
        client = service.client_factory()
        try:
            stream = client.start_stream(
                sample_rate=capture.sample_rate,
                channels=1,
                encoding="s16le",
                options=config.options,
            )
            self._stream = stream
            self._pump(capture, stream)
            duration = capture.duration
            if self.cancelled.is_set():
                return ""
            # Judge by how long the trigger was down: the capture also holds the pre-roll.
            held = (self.released_at if self.released_at is not None else 0.0) - self.started
            if min(held, duration) < config.min_recording:
                self.cancel_stream()
                log.info("recording of %.2f s is too short: nothing typed", max(held, 0.0))
                return ""
            self._stream = None  # from here on it is finished, not cancelled
            finish_from = time.monotonic()
            result = stream.finish()
            log.info(
                "recording %.2f s (%s), transcribed in %.2f s after the end",
                duration,
                self.reason or "stopped",
                time.monotonic() - finish_from,
            )
        finally:
            client.close()
        skipped = result.get("skipped")
        text = str(result.get("text") or "").strip()
        if skipped or not text:
            log.info("nothing to type (%s)", skipped or "no speech")
            return ""
        if config.debug_log_text:
            log.info("transcribed text: %r", text)
        return text

    def _pump(self, capture: Capture, stream: Stream) -> None:
        while True:
            chunk = capture.read(0.1)
            if chunk is None:
                return
            if chunk:
                stream.send(chunk)

    def _drain(self, capture: Capture) -> None:
        # After an error the capture keeps filling until the trigger stops it; read it
        # away so it does not grow.
        while capture.read(0.1) is not None:
            pass


class Settings(Protocol):
    min_recording: float
    debug_log_text: bool

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
        self.stop_event = threading.Event()
        self.sessions: list[Session] = []
        self._current: Session | None = None
        self._keys_lock = threading.Lock()
        self._type_lock = threading.Lock()

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.step(self.source.poll(POLL_SECONDS))
        finally:
            self.shutdown()

    def step(self, events: list[Any]) -> None:
        for event in events:
            with self._keys_lock:
                actions = self.machine.feed(event)
            self._handle(actions)
        with self._keys_lock:
            actions = self.machine.tick(self.clock())
        self._handle(actions)

    def _handle(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Forward):
                self._forward(action.event)
            elif isinstance(action, StartRecording):
                self._start(action.time)
            elif isinstance(action, StopRecording):
                self._stop(action.time, action.reason)
            elif isinstance(action, Panic):
                log.warning("Backspace+Escape+Enter held: releasing the keyboards and exiting")
                self.stop_event.set()

    def _forward(self, event: KeyEvent) -> None:
        if self.keyboard is not None and self.source.is_grabbed(event.device):
            self.keyboard.emit(event.code, event.value)

    def _start(self, when: float) -> None:
        session = Session(self, when)
        self._current = session
        self.sessions = [s for s in self.sessions if s.is_alive()] + [session]
        log.info("recording started")
        self.feedback.started()
        session.start()

    def _stop(self, when: float, reason: str) -> None:
        session, self._current = self._current, None
        if session is None:
            return
        session.stop(when, reason)
        self.feedback.stopped()

    # -- typing (session threads) ------------------------------------------------------
    def keys_down(self) -> frozenset[int]:
        with self._keys_lock:
            return self.machine.keys_down()

    def wait_for_release(self, cancelled: threading.Event) -> bool:
        blocking = MODIFIER_CODES | set(self.machine.combo)
        deadline = self.clock() + RELEASE_WAIT_SECONDS
        while self.keys_down() & blocking:
            if cancelled.is_set() or self.stop_event.is_set() or self.clock() > deadline:
                return False
            self.sleep(0.02)
        return True

    def type_result(self, text: str, session: Session) -> None:
        if self.typer is None:
            log.error("no virtual keyboard: %d characters not typed", len(text))
            return
        with self._type_lock:
            if not self.wait_for_release(session.cancelled):
                log.warning("modifier keys still held: %d characters not typed", len(text))
                return
            report = self.typer.type_text(text, cancel=session.cancelled)
        latency = self.clock() - session.released_at if session.released_at else 0.0
        log.info(
            "typed %d characters (%d through the fallback, %d skipped) %.2f s after key release",
            report.typed,
            report.fallback,
            report.skipped,
            latency,
        )
        if report.fallback or report.skipped:
            log.info("fallbacks used: %s", ", ".join(sorted(set(report.methods))))

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


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    code = getattr(exc, "code", None)
    if isinstance(message, str) and code:
        return f"{message} ({code})"
    return str(exc) or type(exc).__name__
