"""One transcription request as the daemon holds it, from `transcribe` to its reply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from whisperd.protocol import Reply, Transcribe

if TYPE_CHECKING:
    from whisperd.daemon.pcmstore import CompactStream
    from whisperd.engine import Transcription

# Where a job's replies go (its connection's send), and whose job it is.
ReplySink = Callable[[Reply], None]


@dataclass
class Draft:
    start: int  # samples, the job's `committed` when the draft was made
    end: int
    result: Transcription
    at_pause: bool = True  # False: a running draft, made while the speaker talked (live)


@dataclass(frozen=True)
class Piece:
    """A committed stretch of a live stream (samples) and its final text (may be empty:
    a window of silence)."""

    start: int
    end: int
    text: str


@dataclass(eq=False)  # compared by identity; kept in a WeakSet
class Job:
    """One transcription: audio collected from the client, then run on the worker."""

    request: Transcribe
    send: ReplySink
    client: object  # the connection it came on: packing and cancel stay within one client
    chunks: list[bytes] = field(default_factory=list)  # file bytes, decoded at the end
    stream: CompactStream | None = None  # PCM, decoded as it arrives
    size: int = 0
    cancelled: bool = False
    received_at: float = 0.0  # when `end` arrived; 0 while audio is still coming
    # Streamed dictation: audio before `committed` (samples) is already transcribed into
    # `segments` by windows run while the user was still speaking.
    committed: int = 0
    segments: list[dict[str, Any]] = field(default_factory=list)
    window: asyncio.Future[None] | None = None
    window_seconds: float = 0.0
    # A draft: the audio from `committed` to a pause, transcribed while the user was silent.
    # If nothing is said after it before the stream ends, it is the result.
    draft: Draft | None = None
    previous: Draft | None = None  # live: the draft `draft` may confirm (daemon/live.py)
    earlier: list[Draft] = field(default_factory=list)  # live: this piece's drafts before it
    drafting: asyncio.Future[None] | None = None
    draft_seconds: float = 0.0
    last_decode: float = 0.0  # seconds the last window or draft took (live: commit.py)
    draft_used: bool = False
    # A live stream (options.live): the pieces committed so far, in order, tiling the
    # audio up to `committed`, and how many commit events were sent (daemon/live.py).
    pieces: list[Piece] = field(default_factory=list)
    words_end: int = 0  # live: words committed mid-sentence were all spoken before this
    commits_sent: int = 0
    # Stream length (samples) below which the streaming policy has nothing new to say.
    next_check: int | None = None
    # A file transcribed in shared windows with the file queued before it (packing).
    packed: Transcription | None = None
    packed_with: int = 0

    released: bool = False  # answered or dropped: its audio no longer counts

    @property
    def held(self) -> int:
        """Bytes of client audio this job holds against the daemon-wide cap."""
        return 0 if self.released or self.cancelled else self.size

    @property
    def ended(self) -> bool:
        return bool(self.received_at)
