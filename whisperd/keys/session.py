"""One dictation, from key-down to typed text (the session thread of service.py).

The session records and streams; its ``Typist`` types. A live session hands each piece
the daemon commits to the typist as it arrives; a type-at-release session hands over the
whole result at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from whisperd.keys.audio import Capture
from whisperd.keys.livetype import join_pieces
from whisperd.keys.status import Failed, PieceCommitted, TypingDone, TypingStarted

if TYPE_CHECKING:
    from whisperd.keys.service import DictationService

log = logging.getLogger(__name__)

# How long an ending session waits for its cancel to reach the daemon (the stream's own
# timeout ends a stalled one; the session's thread is a daemon thread either way).
CANCEL_WAIT = 5.0


class Stream(Protocol):
    def send(self, pcm: bytes) -> None: ...

    def finish(
        self, on_segment: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]: ...

    def cancel(self) -> None: ...


class Client(Protocol):
    def start_live(
        self,
        on_commit: Callable[[dict[str, Any]], None],
        sample_rate: int = 16000,
        channels: int = 1,
        encoding: str = "s16le",
        options: dict[str, Any] | None = None,
    ) -> Stream: ...

    def close(self) -> None: ...


ClientFactory = Callable[[], Client]


class Session(threading.Thread):
    """One recording, from key-down to typed text.

    Everything that may block (opening the microphone, connecting) happens in this
    thread, typing in its ``Typist``: the main loop passes grabbed keys on and must
    never wait.
    """

    def __init__(self, service: DictationService, started: float) -> None:
        super().__init__(name="whisperd-keys-session", daemon=True)
        self.service = service
        self.started = started
        self.capture: Capture | None = None
        self.released_at: float | None = None
        self.reason = ""
        self.cancelled = threading.Event()
        self.typist = service.new_typist(self.cancelled)
        self.pieces = 0  # committed pieces with text
        self._kept: list[str] = []  # type-at-release: the pieces, typed at the end
        self._final_fed = False  # the text rules were told the dictation ended
        self._stream: Stream | None = None
        self._lock = threading.Lock()
        self._stop_requested = False
        self.finished = False  # set from its own thread as it ends (service.session_ended)
        self._telling: list[threading.Thread] = []  # cancels on their way to the daemon
        self.by_shortcut = False  # started by `whisperctl dictate` (the control socket)
        self.began = threading.Event()  # the microphone opened, or could not
        self.begin_error = ""

    def stop(self, when: float, reason: str) -> None:
        with self._lock:
            self.released_at = when
            self.reason = reason
            self._stop_requested = True
            capture = self.capture
        if capture is not None:
            capture.stop()

    def cancel(self) -> None:
        """From any thread, without waiting: stop recording and typing; what is typed
        stays. The daemon is told on a thread of its own: that waits for the stream's
        socket (up to its timeout when the daemon stalls), and the main loop, which passes
        grabbed keys on, must not."""
        self.cancelled.set()
        self.stop(self.released_at or 0.0, self.reason or "cancelled")
        if self.typist is not None:
            self.typist.cancel()
        telling = threading.Thread(target=self.cancel_stream, name="whisperd-cancel", daemon=True)
        telling.start()
        self._telling.append(telling)  # started first: the session's end joins it

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
            log.error("cannot start recording: %s", describe(exc))
            service.feedback.error("cannot record")
            service.status.apply(Failed("cannot record"))
            self.begin_error = describe(exc)
            self.began.set()
            return None
        with self._lock:
            self.capture = capture
            stop_now = self._stop_requested
        self.began.set()
        if stop_now:  # the key was released while the microphone was opening
            capture.stop()
        return capture

    def run(self) -> None:
        if self.typist is not None:
            self.typist.start()
        try:
            self._run()
        finally:
            self.began.set()
            self._end_typing()
            for telling in list(self._telling):  # a session ends once the daemon knows
                telling.join(CANCEL_WAIT)
            self.service.status.apply(TypingDone())
            self.finished = True
            self.service.session_ended(self)

    def _run(self) -> None:
        service = self.service
        capture = self._begin()
        if capture is None:
            return
        try:
            text = self._transcribe(capture)
            if not self.cancelled.is_set():
                service.status.apply(TypingStarted())
            if text and not self.cancelled.is_set():
                self._type(text)
            service.status.dictation_answered()  # after handing the text on: may block
        except Exception as exc:  # noqa: BLE001 - a thread must report, never die silently
            if self.cancelled.is_set():
                log.debug("session ended by a cancel or shutdown: %s", describe(exc))
                return
            log.error("dictation failed: %s", describe(exc))
            service.feedback.error(describe(exc))
            service.status.apply(Failed(describe(exc)))
            self.cancel_stream()
            self._drain(capture)

    def _type(self, text: str, final: bool = True) -> None:
        if self.typist is not None:
            self.typist.piece(text, final)
            self._final_fed = self._final_fed or final
        else:
            log.error("no virtual keyboard: %d characters not typed", len(text))

    def _on_commit(self, event: dict[str, Any]) -> None:
        # From the client's reader thread. Never log the text.
        text = str(event.get("text") or "").strip()
        final = bool(event.get("final"))
        if self.cancelled.is_set():
            return
        if text:
            self.pieces += 1
            self.service.status.apply(PieceCommitted(text))
        if not self.service.settings.live:
            if text:
                self._kept.append(text)
        elif text or (final and self.service.shaper is not None):
            # the final piece, even empty, types what the text rules held back
            self._type(text, final)

    def _open(self, client: Client, sample_rate: int) -> Stream:
        # Always a live stream, also for type-at-release: whisperd decodes live streams in
        # pieces with timestamps and context, the accurate path (docs/protocol.md); the
        # pieces are then kept and typed at the end.
        return client.start_live(
            self._on_commit,
            sample_rate=sample_rate,
            channels=1,
            encoding="s16le",
            options=self.service.stream_options(),
        )

    def _transcribe(self, capture: Capture) -> str:
        """Stream the recording; the text still to type once it is finished."""
        service = self.service
        config = service.settings
        client = service.client_factory()
        try:
            stream = self._open(client, capture.sample_rate)
            self._stream = stream
            if self.cancelled.is_set():  # cancelled while connecting
                self.cancel_stream()
                return ""
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
        if config.live and self.pieces:
            return ""  # every word came in a commit event and is typed or queued
        if service.shaper is None:
            return join_pieces(self._kept) if self._kept else text
        pieces = self._kept or [text]  # the text rules see the pieces as in live typing
        for index, piece in enumerate(pieces):
            self._type(piece, final=index == len(pieces) - 1)
        return ""

    def _end_typing(self) -> None:
        typist = self.typist
        if typist is None:
            return
        if self.cancelled.is_set():
            typist.cancel()
        elif self.pieces and not self._final_fed and self.service.shaper is not None:
            typist.piece("", final=True)  # no final commit came: type what is held
        typist.finish()
        typist.join()
        report = typist.report
        if not (report.consumed or typist.dropped):
            return
        last = typist.last_typed_at
        after = max(0.0, last - self.released_at) if last and self.released_at else 0.0
        log.info(
            "typed %d characters (%d through the fallback, %d skipped) %.2f s after key release",
            report.typed,
            report.fallback,
            report.skipped,
            after,
        )
        if report.fallback or report.skipped:
            log.info("fallbacks used: %s", ", ".join(sorted(set(report.methods))))

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


def describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    code = getattr(exc, "code", None)
    if isinstance(message, str) and code:
        return f"{message} ({code})"
    return str(exc) or type(exc).__name__
