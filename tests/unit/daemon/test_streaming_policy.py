"""Golden cases of the streaming policy (whisperd/daemon/streaming.py): a stream's state
in, the decision and its next deadline out. Positions are samples at a 100 Hz "rate" so
that one second is 100 and the cases read as numbers."""

from __future__ import annotations

import pytest

from whisperd.daemon.streaming import (
    NEVER,
    CutWindow,
    Decision,
    StartDraft,
    StreamPolicy,
    StreamState,
    Verdict,
    Wait,
    decide,
    draft_verdict,
)

RATE = 100
# stream_window 10 s (+2 s searched for a quiet cut), draft after a 0.25 s pause.
POLICY = StreamPolicy.from_seconds(window=10.0, pause=0.25, sample_rate=RATE)


def test_policy_from_seconds_rounds_up_to_whole_samples() -> None:
    assert POLICY == StreamPolicy(window=1200, pause=25, draft_max=2800, vad_min=10)
    # 0.251 s at 100 Hz is 25.1 samples: a pause of 25 samples is not yet long enough.
    assert StreamPolicy.from_seconds(10.0, 0.251, RATE).pause == 26
    assert StreamPolicy.from_seconds(0.0, 0.0, RATE).window == 0


GOLDEN: list[tuple[str, StreamState, Decision]] = [
    # Speech still going on: no pause, so no draft; the window's deadline is next.
    ("speaking", StreamState(length=500, committed=0, spoken=500), Wait(525)),
    # Silence so far: the first word may come with any audio.
    ("silence", StreamState(length=500, committed=0, spoken=None), Wait(None)),
    # A pause shorter than draft_pause: a draft at spoken + pause at the earliest.
    ("short pause", StreamState(length=510, committed=0, spoken=500), Wait(525)),
    ("pause", StreamState(length=525, committed=0, spoken=500), StartDraft(0, 525)),
    # Nothing was said since the last draft: no second one.
    (
        "same draft",
        StreamState(length=600, committed=0, spoken=500, draft=(0, 525)),
        Wait(None),
    ),
    # The user spoke again after the last draft, then paused: a new draft.
    (
        "spoke again",
        StreamState(length=700, committed=0, spoken=650, draft=(0, 525)),
        StartDraft(0, 700),
    ),
    # Drafts never delay anyone: a busy worker waits, and any audio asks again.
    (
        "worker busy",
        StreamState(length=525, committed=0, spoken=500, worker_idle=False),
        Wait(None),
    ),
    # stream_window + the search stretch uncommitted: cut a window (before any draft).
    ("window", StreamState(length=1200, committed=0, spoken=1100), CutWindow()),
    ("window after commit", StreamState(length=1900, committed=800, spoken=1890), Wait(1915)),
    ("second window", StreamState(length=2000, committed=800, spoken=1990), CutWindow()),
    # More than one Whisper window uncommitted: no draft (windows disabled here too).
    (
        "too long to draft",
        StreamState(length=2900, committed=0, spoken=2000),
        CutWindow(),
    ),
    # Something running: its end asks again; new audio changes nothing.
    (
        "window running",
        StreamState(length=1300, committed=0, spoken=1, window_running=True),
        Wait(NEVER),
    ),
    (
        "draft running",
        StreamState(length=600, committed=0, spoken=1, draft_running=True),
        Wait(NEVER),
    ),
    ("ended", StreamState(length=600, committed=0, spoken=500, ended=True), Wait(NEVER)),
    ("cancelled", StreamState(length=600, committed=0, spoken=500, cancelled=True), Wait(NEVER)),
]


@pytest.mark.parametrize(("name", "state", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden(name: str, state: StreamState, expected: Decision) -> None:
    assert decide(POLICY, state) == expected


def test_windows_off_and_drafts_off() -> None:
    off = StreamPolicy.from_seconds(window=0.0, pause=0.0, sample_rate=RATE)
    assert decide(off, StreamState(length=100_000, committed=0, spoken=99_000)) == Wait(NEVER)
    windows_only = StreamPolicy.from_seconds(window=10.0, pause=0.0, sample_rate=RATE)
    assert decide(windows_only, StreamState(length=600, committed=0, spoken=10)) == Wait(1200)
    # Too long for a draft and no window to cut it: nothing will ever start.
    drafts_only = StreamPolicy.from_seconds(window=0.0, pause=0.25, sample_rate=RATE)
    assert decide(drafts_only, StreamState(length=2801, committed=0, spoken=10)) == Wait(NEVER)


def test_a_dictation_replayed() -> None:
    """A stream fed 0.1 s at a time: speech to 3 s, a pause, then a draft at 3.3 s."""
    decisions: list[tuple[int, Decision]] = []
    for length in range(10, 400, 10):
        spoken = min(length, 300)
        decision = decide(POLICY, StreamState(length=length, committed=0, spoken=spoken))
        if not isinstance(decision, Wait):
            decisions.append((length, decision))
            break
    assert decisions == [(330, StartDraft(0, 330))]


VERDICTS: list[tuple[str, tuple[int, int] | None, int, int | None, int, Verdict]] = [
    ("no draft", None, 0, 300, 400, Verdict.UNUSABLE),
    ("draft of an older window", (0, 330), 200, 300, 400, Verdict.UNUSABLE),
    ("spoke after the draft", (0, 330), 0, 360, 400, Verdict.UNUSABLE),
    ("silent tail to check", (0, 330), 0, 300, 400, Verdict.USABLE_IF_SILENT),
    ("nothing after the draft", (0, 330), 0, 300, 335, Verdict.USABLE),
    ("silence throughout", (0, 330), 0, None, 335, Verdict.USABLE),
]


@pytest.mark.parametrize(
    ("name", "draft", "committed", "spoken", "length", "expected"),
    VERDICTS,
    ids=[v[0] for v in VERDICTS],
)
def test_draft_verdict(
    name: str,
    draft: tuple[int, int] | None,
    committed: int,
    spoken: int | None,
    length: int,
    expected: Verdict,
) -> None:
    assert draft_verdict(POLICY, draft, committed, spoken, length) is expected


def test_a_running_draft_is_the_answer_only_after_a_whole_pause() -> None:
    # A live stream's running draft, made while the speaker talked: its last word may be
    # cut unless a whole pause (0.25 s) followed the last word before its end.
    assert draft_verdict(POLICY, (0, 320), 0, 300, 320, at_pause=False) is Verdict.UNUSABLE
    assert draft_verdict(POLICY, (0, 325), 0, 300, 325, at_pause=False) is Verdict.USABLE
    assert draft_verdict(POLICY, (0, 320), 0, 300, 320) is Verdict.USABLE  # made at a pause
