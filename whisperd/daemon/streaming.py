"""The streaming policy as a pure state machine: a stream's state in, a decision out.

While a dictation streams in, two things can be done ahead of its end:
- cut a *window*: transcribe a finished stretch of a long dictation (``stream_window``
  seconds and more), so that at release only the tail is left;
- start a *draft*: when the user pauses for ``draft_pause`` seconds, transcribe what they
  said so far while they are silent; if nothing is said after it, the draft is the answer
  and the release costs no decoding at all.

At the end of the stream, ``draft_verdict`` says whether the last draft can be the answer.

Nothing here touches audio, the clock or the worker: positions are in samples, passed in,
so the golden tests (tests/unit/daemon/test_streaming_policy.py) replay streams as a few
numbers. Each decision carries ``next_at``, the stream length before which the decision
cannot change unless something other than new audio happens (a window or draft ending,
the worker falling idle); None means "ask again with the next audio".
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

# Streamed windows end at the quietest moment of their last WINDOW_SEARCH seconds.
WINDOW_SEARCH = 2.0
# Drafts are made of at most this much audio (one Whisper window).
DRAFT_MAX_SECONDS = 28.0
# The VAD needs this much audio to judge whether a word hides after a draft.
DRAFT_VAD_MIN = 0.1


@dataclass(frozen=True)
class StreamPolicy:
    """The limits of the policy, in samples (built from the configuration once)."""

    # A window is cut once this much is uncommitted (stream_window, plus the stretch
    # searched for the quietest cut); 0: never.
    window: int
    pause: int  # silence after speech that starts a draft; 0: never
    draft_max: int  # no draft of more than this much audio
    vad_min: int  # audio after a draft shorter than this is too short for the VAD

    @classmethod
    def from_seconds(cls, window: float, pause: float, sample_rate: int) -> StreamPolicy:
        # Rounded up: "at least x seconds" of whole samples is at least ceil(x) samples.
        return cls(
            window=math.ceil((window + WINDOW_SEARCH) * sample_rate) if window > 0 else 0,
            pause=math.ceil(pause * sample_rate) if pause > 0 else 0,
            draft_max=math.floor(DRAFT_MAX_SECONDS * sample_rate),
            vad_min=math.ceil(DRAFT_VAD_MIN * sample_rate),
        )


@dataclass(frozen=True)
class StreamState:
    """What the policy needs to know about one stream, all positions in samples."""

    length: int  # audio received so far
    committed: int  # audio before this is transcribed by earlier windows
    spoken: int | None  # where speech after `committed` last stopped; None: none yet
    ended: bool = False  # the client sent `end`
    cancelled: bool = False
    window_running: bool = False
    draft_running: bool = False
    worker_idle: bool = True  # nothing else queued or running, and the model loaded
    draft: tuple[int, int] | None = None  # (start, end) of the last finished draft
    draft_has_text: bool = False  # the last draft decoded some text (live commits, commit.py)
    draft_ends_sentence: bool = False  # ... and its text ends a sentence (live)
    draft_sentences: int = 1  # ... how many sentences its text holds (live)
    draft_speech_from: int = 0  # where speech begins in the last draft (live; 0: its start)
    previous: tuple[int, int] | None = None  # the draft before the last one (live)
    previous_confirmed: bool = False  # the last draft begins with its words (live)
    has_context: bool = False  # text was committed before `committed` (live)
    draft_at_pause: bool = True  # the last draft was made at a pause, not while speaking (live)
    draft_words: int = 0  # how many words the last draft's text holds (live)
    agreed: int = 0  # its first words that the draft before it agrees with (live, commit.py)
    speech_from: int = 0  # where speech begins after `committed` (live; 0: at `committed`)
    decode_time: int = 0  # how long the last window or draft took to decode (live; samples)


@dataclass(frozen=True)
class Wait:
    next_at: int | None  # stream length worth asking again at; None: with the next audio


@dataclass(frozen=True)
class CutWindow:
    """Transcribe from `committed` to a quiet moment near the end of what arrived."""


@dataclass(frozen=True)
class StartDraft:
    start: int
    end: int
    at_pause: bool = True  # False: a running draft of a live stream, made while speaking


Decision = Wait | CutWindow | StartDraft


# `next_at` of a decision no amount of new audio can change (only a window or draft
# ending, or the worker falling idle, can).
NEVER: Final = 2**62


def decide(policy: StreamPolicy, state: StreamState) -> Decision:
    """What to do now that the stream looks like ``state``: at most one thing."""
    if state.ended or state.cancelled or state.window_running or state.draft_running:
        return Wait(NEVER)  # the end of the running piece asks again
    window_at = _window_at(policy, state)
    if state.length >= window_at:
        return CutWindow()
    draft = _draft(policy, state)
    if isinstance(draft, StartDraft):
        return draft
    return Wait(None if draft is None else min(window_at, draft))


def _window_at(policy: StreamPolicy, state: StreamState) -> int:
    if policy.window <= 0:
        return NEVER
    return state.committed + policy.window


def _draft(policy: StreamPolicy, state: StreamState) -> StartDraft | int | None:
    """A draft to start now, or the stream length before which none can start (NEVER:
    none can; None: no bound known, ask again with the next audio)."""
    if policy.pause <= 0:
        return NEVER
    if state.length - state.committed > policy.draft_max:
        return NEVER  # too long for one window: the stream's windows must cut it first
    if state.spoken is None:
        return None  # silence so far: the first word may come with the next audio
    if not state.worker_idle:
        return None  # drafts never delay anyone; the worker may be idle next time
    ready_at = state.spoken + policy.pause
    if state.length < ready_at:
        return ready_at  # speech only moves later, so no draft before this
    last = state.draft
    if last is not None and last[0] == state.committed and state.spoken <= last[1]:
        return None  # nothing was said since the last draft
    return StartDraft(state.committed, state.length)


class Verdict(enum.Enum):
    UNUSABLE = "unusable"  # speech after the draft, or no draft of this tail
    USABLE = "usable"  # the draft is the answer
    USABLE_IF_SILENT = "usable_if_silent"  # the answer unless the VAD hears a word after it


def draft_verdict(
    policy: StreamPolicy,
    draft: tuple[int, int] | None,
    committed: int,
    spoken: int | None,
    length: int,
    at_pause: bool = True,
) -> Verdict:
    """Whether the last draft can be the answer of a stream that ended at ``length``;
    ``at_pause`` False: a running draft of a live stream, made while the speaker talked."""
    if draft is None or draft[0] != committed:
        return Verdict.UNUSABLE
    if spoken is not None and spoken > draft[1]:
        return Verdict.UNUSABLE  # louder than a pause after the draft: the user spoke again
    if not at_pause and spoken is not None and spoken + policy.pause > draft[1]:
        return Verdict.UNUSABLE  # no whole pause after the last word: it may be cut
    if length - draft[1] >= policy.vad_min:
        return Verdict.USABLE_IF_SILENT  # quiet, but a soft word could hide there
    return Verdict.USABLE
