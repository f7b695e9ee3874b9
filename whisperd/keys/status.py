"""The dictation status as a pure state machine: events in, Status snapshots out, time
passed in (docs/keys.md "Status for bars"; the shared spec of the control socket).

whisperd-keys feeds it what happens to a dictation and publishes each Status it returns to
the followers of its control socket (``whisperctl status --follow``). Nothing here touches
a thread, a socket or the clock, so the golden tests replay event sequences.

States:
- ``idle``: nothing going on.
- ``recording``: the microphone is live. It wins over everything else: when a new
  dictation starts while the last one is still being typed, the state is ``recording``,
  and the old dictation's late events do not hide it.
- ``transcribing``: recording stopped, waiting for the rest of the text.
- ``typing``: typing the text after recording stopped (in live dictation typing while
  recording shows as ``recording``).
- ``error``: a dictation failed; it carries a short reason (never dictated text) and
  stays until the next dictation, a cancel, or ``error_hold`` seconds.

Whether the daemon runs and has its model loaded comes from ``DaemonSeen`` events (see
whisperd/keys/daemonstate.py: what whisperd-keys knows without starting whisperd).

Privacy: the committed text is kept only when ``keep_text`` (``[keys] status_text``); a
Status carries it, and ``to_json(with_text=True)`` shows it, only then.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from whisperd.keys.livetype import join_pieces

ERROR_HOLD_SECONDS = 10.0
TICK_SECONDS = 1.0  # elapsed updates while recording, one a second
MAX_REASON_CHARS = 80


class State(enum.StrEnum):
    IDLE = "idle"
    RECORDING = "recording"
    TRANSCRIBING = "transcribing"
    TYPING = "typing"
    ERROR = "error"


class Daemon(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


class Model(enum.StrEnum):
    LOADED = "loaded"
    UNLOADED = "unloaded"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RecordingStarted:
    """The microphone opened for a new dictation."""


@dataclass(frozen=True)
class RecordingStopped:
    """The trigger (or ``whisperctl dictate stop``) ended the recording."""


@dataclass(frozen=True)
class PieceCommitted:
    """whisperd made a piece of the dictation final (live dictation)."""

    text: str


@dataclass(frozen=True)
class TypingStarted:
    """whisperd-keys began typing text."""


@dataclass(frozen=True)
class TypingDone:
    """The dictation is over: its text is typed, or there was nothing to type."""


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Cancelled:
    """The user cancelled the dictation (Escape, ``whisperctl dictate cancel``)."""


@dataclass(frozen=True)
class DaemonSeen:
    """What is known about whisperd now; ``None`` for a part that is not known."""

    running: bool | None
    model_loaded: bool | None


@dataclass(frozen=True)
class Tick:
    """Called regularly (at least once a second): elapsed updates and error expiry."""


Event = (
    RecordingStarted
    | RecordingStopped
    | PieceCommitted
    | TypingStarted
    | TypingDone
    | Failed
    | Cancelled
    | DaemonSeen
    | Tick
)


@dataclass(frozen=True)
class Status:
    """One snapshot, as sent to followers."""

    state: State
    since: float  # unix time the state began
    daemon: Daemon = Daemon.UNKNOWN
    model: Model = Model.UNKNOWN
    elapsed: float | None = None  # recording only: seconds since it started
    reason: str | None = None  # error only
    text: str | None = None  # the dictation's committed text, only with keep_text
    # Counts the statuses published (the control server's order); not part of the event.
    version: int = field(default=0, compare=False)

    def to_json(self, with_text: bool = False) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "status", "state": str(self.state), "since": self.since}
        if self.elapsed is not None:
            event["elapsed"] = self.elapsed
        if self.reason is not None:
            event["reason"] = self.reason
        if with_text and self.text is not None and self.state is State.RECORDING:
            event["text"] = self.text
        event["daemon"] = str(self.daemon)
        event["model"] = str(self.model)
        return event


def short_reason(reason: str) -> str:
    """One short line: a bar has no room for a traceback's worth of message."""
    line = " ".join(reason.split()) or "failed"
    if len(line) > MAX_REASON_CHARS:
        line = line[: MAX_REASON_CHARS - 1].rstrip() + "…"
    return line


def daemon_of(running: bool | None) -> Daemon:
    if running is None:
        return Daemon.UNKNOWN
    return Daemon.RUNNING if running else Daemon.STOPPED


def model_of(loaded: bool | None) -> Model:
    if loaded is None:
        return Model.UNKNOWN
    return Model.LOADED if loaded else Model.UNLOADED


class StatusMachine:
    """``apply(event, now)`` returns the new Status to publish, or None when followers
    need not hear anything (no visible change)."""

    def __init__(
        self,
        now: float,
        keep_text: bool = False,
        error_hold: float = ERROR_HOLD_SECONDS,
        tick: float = TICK_SECONDS,
    ) -> None:
        self.keep_text = keep_text
        self.error_hold = error_hold
        self.tick = tick
        self._status = Status(State.IDLE, since=now)
        self._pieces: list[str] = []
        self._published_at = now

    @property
    def state(self) -> State:
        return self._status.state

    def snapshot(self, now: float) -> Status:
        """The status as of ``now`` (for a ``status`` request or a new follower)."""
        status = self._status
        if status.state is State.RECORDING:
            return replace(status, elapsed=elapsed(status.since, now))
        return status

    def apply(self, event: Event, now: float) -> Status | None:
        new = self._next(event, now)
        if new is None or new == self._status:
            return None
        new = replace(new, version=self._status.version + 1)
        self._status = new
        self._published_at = now
        return new

    def _next(self, event: Event, now: float) -> Status | None:
        state = self._status.state
        if isinstance(event, RecordingStarted):
            if state is State.RECORDING:
                return None
            self._pieces = []
            return self._enter(State.RECORDING, now)
        if isinstance(event, Tick):
            return self._tick(now)
        if isinstance(event, DaemonSeen):
            return self._daemon_seen(event, now)
        if isinstance(event, Failed):
            self._pieces = []
            return replace(self._enter(State.ERROR, now), reason=short_reason(event.reason))
        if isinstance(event, Cancelled):
            self._pieces = []
            return None if state is State.IDLE else self._enter(State.IDLE, now)
        return self._dictation_step(event, state, now)

    def _dictation_step(self, event: Event, state: State, now: float) -> Status | None:
        """Events of the running dictation; an error stays visible through them."""
        if isinstance(event, PieceCommitted):
            # The text is shown while recording only: the tail that comes later is not kept.
            if not (self.keep_text and event.text.strip() and state is State.RECORDING):
                return None
            self._pieces.append(event.text.strip())
            return replace(self.snapshot(now), text=join_pieces(self._pieces))
        if isinstance(event, RecordingStopped):
            return self._enter(State.TRANSCRIBING, now) if state is State.RECORDING else None
        if isinstance(event, TypingStarted):
            return self._enter(State.TYPING, now) if state is State.TRANSCRIBING else None
        if isinstance(event, TypingDone):
            if state in (State.TRANSCRIBING, State.TYPING):
                self._pieces = []
                return self._enter(State.IDLE, now)
        return None

    def _tick(self, now: float) -> Status | None:
        status = self._status
        if status.state is State.ERROR and now - status.since >= self.error_hold:
            return self._enter(State.IDLE, now)
        if status.state is State.RECORDING and now - self._published_at >= self.tick:
            return self.snapshot(now)
        return None

    def _daemon_seen(self, event: DaemonSeen, now: float) -> Status | None:
        daemon = daemon_of(event.running)
        model = model_of(event.model_loaded)
        if event.running is False:
            model = Model.UNLOADED  # no process, no model in memory
        if (daemon, model) == (self._status.daemon, self._status.model):
            return None
        status = self.snapshot(now) if self._status.state is State.RECORDING else self._status
        return replace(status, daemon=daemon, model=model)

    def _enter(self, state: State, now: float) -> Status:
        """A new state from ``now``; what is known about the daemon carries over."""
        old = self._status
        text = join_pieces(self._pieces) if (self.keep_text and self._pieces) else None
        return Status(
            state,
            since=now,
            daemon=old.daemon,
            model=old.model,
            elapsed=0.0 if state is State.RECORDING else None,
            text=text if state is State.RECORDING else None,
        )


def elapsed(since: float, now: float) -> float:
    return round(max(0.0, now - since), 1)
