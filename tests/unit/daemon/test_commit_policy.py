"""Golden cases of the live commit policy (whisperd/daemon/commit.py): a stream's state
in, the decision out, and whole dictations replayed through it. Positions are samples at
a 100 Hz "rate", so one second is 100."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from whisperd.daemon.commit import (
    CUT_SPAN,
    CommitDraft,
    CommitWords,
    LiveDecision,
    LivePolicy,
    confirmable,
    decide_live,
    decide_release,
    safe_cut,
)
from whisperd.daemon.streaming import (
    NEVER,
    CutWindow,
    StartDraft,
    StreamPolicy,
    StreamState,
    Wait,
)

RATE = 100
POLICY = StreamPolicy.from_seconds(window=10.0, pause=0.25, sample_rate=RATE)
# A draft is committed at once when it ends a sentence and covers 2.5 s; otherwise when
# the next draft confirms it, or after a 2 s pause, or at the release.
LIVE = LivePolicy.from_seconds(long_pause=2.0, sample_rate=RATE)

GOLDEN: list[tuple[str, StreamState, LiveDecision]] = [
    ("speaking", StreamState(length=500, committed=0, spoken=500), Wait(525)),
    ("silence only", StreamState(length=500, committed=0, spoken=None), Wait(None)),
    ("pause: draft", StreamState(length=525, committed=0, spoken=500), StartDraft(0, 525)),
    # The draft of the pause gave text: final once the next draft confirms it, or once
    # the pause has lasted 2 s (after speech)...
    (
        "draft, pausing",
        StreamState(length=560, committed=0, spoken=500, draft=(0, 525), draft_has_text=True),
        Wait(700),
    ),
    (
        "draft, long pause",
        StreamState(length=700, committed=0, spoken=500, draft=(0, 525), draft_has_text=True),
        CommitDraft(0, 525),
    ),
    # ... and when the user goes on, the next pause drafts it again with what follows.
    (
        "draft, spoke again",
        StreamState(length=700, committed=0, spoken=690, draft=(0, 525), draft_has_text=True),
        Wait(715),
    ),
    (
        "draft, spoke again and paused",
        StreamState(length=720, committed=0, spoken=690, draft=(0, 525), draft_has_text=True),
        StartDraft(0, 720),
    ),
    # The later draft begins with the earlier one's words: the earlier piece is final.
    (
        "confirmed",
        StreamState(
            length=800,
            committed=0,
            spoken=700,
            draft=(0, 730),
            draft_has_text=True,
            previous=(0, 525),
            previous_confirmed=True,
        ),
        CommitDraft(0, 525),
    ),
    (
        "not confirmed",
        StreamState(
            length=800,
            committed=0,
            spoken=700,
            draft=(0, 730),
            draft_has_text=True,
            previous=(0, 525),
        ),
        Wait(900),
    ),
    # A draft whose text ends a sentence is final at once, whether the user is still
    # silent or already speaking again.
    (
        "draft ends a sentence",
        StreamState(
            length=560,
            committed=0,
            spoken=500,
            draft=(0, 525),
            draft_has_text=True,
            draft_ends_sentence=True,
        ),
        CommitDraft(0, 525),
    ),
    (
        "draft ends a sentence, spoke again",
        StreamState(
            length=600,
            committed=0,
            spoken=595,
            draft=(0, 525),
            draft_has_text=True,
            draft_ends_sentence=True,
        ),
        CommitDraft(0, 525),
    ),
    # ... unless it is short (under 2.5 s): the model ends a phrase cut at a comma with a
    # full stop too; it waits for the next pause to confirm it, as a mid-sentence draft.
    (
        "short draft ends a sentence",
        StreamState(
            length=200,
            committed=0,
            spoken=150,
            draft=(0, 175),
            draft_has_text=True,
            draft_ends_sentence=True,
        ),
        Wait(350),
    ),
    (
        "short draft ends a sentence, spoke again",
        StreamState(
            length=200,
            committed=0,
            spoken=195,
            draft=(0, 175),
            draft_has_text=True,
            draft_ends_sentence=True,
        ),
        Wait(220),
    ),
    # The silence before the first word does not count: 2.6 s of stream, 1.9 s of speech.
    (
        "draft ends a sentence, mostly silence",
        StreamState(
            length=280,
            committed=0,
            spoken=220,
            draft=(0, 260),
            draft_has_text=True,
            draft_ends_sentence=True,
            draft_speech_from=30,
        ),
        Wait(420),
    ),
    # Before any text is committed, a draft is not final on less than 4.5 s of audio:
    # the first sentence, heard alone, is where the model errs most.
    (
        "first piece: two sentences under 4.5 s wait",
        StreamState(
            length=420,
            committed=0,
            spoken=380,
            draft=(0, 405),
            draft_has_text=True,
            draft_ends_sentence=True,
            draft_sentences=2,
        ),
        Wait(580),
    ),
    # ... but one sentence (a short dictation) is final in its pause, as later ones.
    (
        "first piece: one sentence under 4.5 s",
        StreamState(
            length=420,
            committed=0,
            spoken=380,
            draft=(0, 405),
            draft_has_text=True,
            draft_ends_sentence=True,
        ),
        CommitDraft(0, 405),
    ),
    (
        "a sentence under 4.5 s after earlier text",
        StreamState(
            length=820,
            committed=500,
            spoken=780,
            draft=(500, 805),
            draft_has_text=True,
            draft_ends_sentence=True,
            has_context=True,
        ),
        CommitDraft(500, 805),
    ),
    # A draft that heard less than 1.5 s after the previous one does not confirm it.
    (
        "confirmed by a draft that heard 1 s more",
        StreamState(
            length=1100,
            committed=500,
            spoken=1090,
            draft=(500, 1000),
            draft_has_text=True,
            previous=(500, 900),
            previous_confirmed=True,
            has_context=True,
        ),
        Wait(1115),
    ),
    (
        "confirmed by a draft that heard 1.5 s more",
        StreamState(
            length=1100,
            committed=500,
            spoken=1000,
            draft=(500, 1050),
            draft_has_text=True,
            previous=(500, 900),
            previous_confirmed=True,
            has_context=True,
        ),
        CommitDraft(500, 900),
    ),
    (
        "first piece: confirmed by a draft under 4.5 s",
        StreamState(
            length=420,
            committed=0,
            spoken=380,
            draft=(0, 405),
            draft_has_text=True,
            previous=(0, 200),
            previous_confirmed=True,
        ),
        Wait(580),
    ),
    # The silence before the first word is not heard speech: 5 s of draft, 3.75 s of it
    # from the first word.
    (
        "first piece: confirmed by a draft of 3.75 s from its first word",
        StreamState(
            length=520,
            committed=0,
            spoken=480,
            draft=(0, 505),
            draft_has_text=True,
            draft_speech_from=130,
            previous=(0, 350),
            previous_confirmed=True,
        ),
        Wait(680),
    ),
    (
        "draft ends a sentence, stale",
        StreamState(
            length=700,
            committed=525,
            spoken=650,
            draft=(0, 525),
            draft_has_text=True,
            draft_ends_sentence=True,
        ),
        StartDraft(525, 700),
    ),
    # A draft without text (too short, or no speech for the VAD) is not committed: its
    # audio stays in the next piece, and the next pause drafts it again.
    (
        "draft without text",
        StreamState(length=560, committed=0, spoken=500, draft=(0, 525)),
        Wait(None),
    ),
    (
        "draft without text, spoke again",
        StreamState(length=700, committed=0, spoken=650, draft=(0, 525)),
        StartDraft(0, 700),
    ),
    # A draft of an older piece is never committed again.
    (
        "stale draft",
        StreamState(length=700, committed=525, spoken=650, draft=(0, 525), draft_has_text=True),
        StartDraft(525, 700),
    ),
    # After a commit, the next piece starts there: nothing said since, nothing to do.
    ("after a commit, silence", StreamState(length=600, committed=525, spoken=None), Wait(None)),
    # Very long speech without a pause: a window is cut.
    ("no pause for 12 s", StreamState(length=1725, committed=525, spoken=1725), CutWindow()),
    # Release while a draft is running, or after it: the release decides (final piece).
    (
        "pause right before release",
        StreamState(length=530, committed=0, spoken=500, draft_running=True, ended=True),
        Wait(NEVER),
    ),
    (
        "ended with a draft",
        StreamState(
            length=560, committed=0, spoken=500, draft=(0, 525), draft_has_text=True, ended=True
        ),
        Wait(NEVER),
    ),
    (
        "cancelled",
        StreamState(
            length=560, committed=0, spoken=500, draft=(0, 525), draft_has_text=True, cancelled=True
        ),
        Wait(NEVER),
    ),
]


@pytest.mark.parametrize(("name", "state", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden(name: str, state: StreamState, expected: LiveDecision) -> None:
    assert decide_live(POLICY, LIVE, state) == expected


# At the release: what is committed before the tail is decoded.
PENDING = {"draft": (0, 525), "draft_has_text": True}
RELEASE: list[tuple[str, StreamState, CommitDraft | None]] = [
    # A draft waiting for confirmation, and the user spoke after it: final now, so the
    # release decodes only the words after it.
    (
        "pending, spoke after",
        StreamState(length=800, committed=0, spoken=790, ended=True, **PENDING),  # type: ignore[arg-type]
        CommitDraft(0, 525),
    ),
    # A short one (under 2.5 s) is decoded again with the tail: alone, it is where the
    # model errs most.
    (
        "short pending, spoke after",
        StreamState(
            length=800, committed=0, spoken=790, ended=True, draft=(0, 200), draft_has_text=True
        ),
        None,
    ),
    # Before any text is committed, one under 4.5 s is decoded again with the tail too.
    (
        "first piece: pending under 4.5 s, spoke after",
        StreamState(
            length=800, committed=0, spoken=790, ended=True, draft=(0, 400), draft_has_text=True
        ),
        None,
    ),
    (
        "pending under 4.5 s after earlier text, spoke after",
        StreamState(
            length=1300,
            committed=500,
            spoken=1290,
            ended=True,
            draft=(500, 900),
            draft_has_text=True,
            has_context=True,
        ),
        CommitDraft(500, 900),
    ),
    # Silent since the draft: it is the final piece itself (no decode at all).
    (
        "pending, silent after",
        StreamState(length=800, committed=0, spoken=500, ended=True, **PENDING),  # type: ignore[arg-type]
        None,
    ),
    (
        "confirmed previous",
        StreamState(
            length=900,
            committed=0,
            spoken=890,
            ended=True,
            draft=(0, 730),
            draft_has_text=True,
            previous=(0, 525),
            previous_confirmed=True,
        ),
        CommitDraft(0, 525),
    ),
    ("no draft", StreamState(length=800, committed=0, spoken=790, ended=True), None),
    (
        "draft without text",
        StreamState(length=800, committed=0, spoken=790, ended=True, draft=(0, 525)),
        None,
    ),
    (
        "stale draft",
        StreamState(length=800, committed=525, spoken=790, ended=True, **PENDING),  # type: ignore[arg-type]
        None,
    ),
    (
        "cancelled",
        StreamState(length=800, committed=0, spoken=790, ended=True, cancelled=True, **PENDING),  # type: ignore[arg-type]
        None,
    ),
]


@pytest.mark.parametrize(("name", "state", "expected"), RELEASE, ids=[g[0] for g in RELEASE])
def test_release_golden(name: str, state: StreamState, expected: CommitDraft | None) -> None:
    assert decide_release(LIVE, state) == expected


@dataclass
class Replay:
    """A dictation fed 0.1 s at a time through the policy. Speech is a list of
    (start, end) intervals; a draft or window takes ``decode`` samples of stream time and
    has text when its audio holds at least 0.2 s of speech (the model's view)."""

    speech: list[tuple[int, int]]
    decode: int = 20
    committed: int = 0
    pieces: list[tuple[int, int]] = field(default_factory=list)
    draft: tuple[int, int] | None = None
    previous: tuple[int, int] | None = None
    earlier: list[tuple[int, int]] = field(default_factory=list)  # the piece's drafts before
    agree: bool = True  # whether a later draft begins with the earlier one's words
    sentences: bool = False  # whether a draft's text ends a sentence
    sentence_count: int = 1  # how many sentences a draft's text holds
    running: tuple[str, int, int, int] | None = None  # kind, start, end, done at

    def spoken(self, length: int) -> int | None:
        ends = [min(e, length) for s, e in self.speech if e > self.committed and s < length]
        return max(ends) if ends else None

    def speech_from(self, draft: tuple[int, int] | None) -> int:
        starts = [max(s, draft[0]) for s, e in self.speech if draft and e > draft[0]]
        return min(starts, default=0)

    def has_text(self, start: int, end: int) -> bool:
        said = sum(max(0, min(e, end) - max(s, start)) for s, e in self.speech)
        return said >= 20

    def finish_running(self, length: int) -> None:
        if self.running is None or length < self.running[3]:
            return
        kind, start, end, _ = self.running
        self.running = None
        if kind == "draft":  # as daemon/live.py's new_draft
            old = self.draft
            self.earlier = [e for e in self.earlier if e[0] == start]
            if old is not None and old[0] == start and self.has_text(*old):
                self.earlier.append(old)
            index = confirmable([e[1] for e in self.earlier], end, LIVE)
            self.previous = None if index is None else self.earlier[index]
            self.draft = (start, end)
        else:  # a window: committed at its cut
            self.pieces.append((start, end))
            self.committed = end

    def step(self, length: int) -> None:
        self.finish_running(length)
        draft_text = self.draft is not None and self.has_text(*self.draft)
        state = StreamState(
            length=length,
            committed=self.committed,
            spoken=self.spoken(length),
            window_running=self.running is not None and self.running[0] == "window",
            draft_running=self.running is not None and self.running[0] == "draft",
            draft=self.draft,
            draft_has_text=draft_text,
            draft_ends_sentence=draft_text and self.sentences,
            draft_sentences=self.sentence_count,
            draft_speech_from=self.speech_from(self.draft),
            previous=self.previous,
            previous_confirmed=self.previous is not None and self.agree,
            has_context=self.has_context,
        )
        decision = decide_live(POLICY, LIVE, state)
        if isinstance(decision, CommitDraft):
            self.commit(decision)
        elif isinstance(decision, StartDraft):
            self.running = ("draft", decision.start, decision.end, length + self.decode)
        elif isinstance(decision, CutWindow):
            cut = length - 100  # the quiet cut: somewhere in the last 2 s (100 here: 1 s)
            self.running = ("window", self.committed, cut, length + self.decode)

    def commit(self, decision: CommitDraft) -> None:
        self.pieces.append((decision.start, decision.end))
        latest = self.draft
        self.committed, self.draft, self.previous = decision.end, None, None
        self.earlier = []
        if latest is not None and latest[1] > decision.end:  # the rest: a new draft
            self.draft = (decision.end, latest[1])

    def release_state(self, release: int) -> StreamState:
        draft_text = self.draft is not None and self.has_text(*self.draft)
        return StreamState(
            length=release,
            committed=self.committed,
            spoken=self.spoken(release),
            ended=True,
            draft=self.draft,
            draft_has_text=draft_text,
            draft_speech_from=self.speech_from(self.draft),
            previous=self.previous,
            previous_confirmed=self.previous is not None and self.agree,
            has_context=self.has_context,
        )

    @property
    def has_context(self) -> bool:
        return any(self.has_text(*piece) for piece in self.pieces)

    def run(self, release: int) -> list[tuple[int, int]]:
        for length in range(10, release + 1, 10):
            self.step(length)
        # Release: a running piece ends first, pending drafts the user spoke after are
        # committed, then the tail is the final piece.
        if self.running is not None:
            self.finish_running(self.running[3])
        while (decision := decide_release(LIVE, self.release_state(release))) is not None:
            self.commit(decision)
        return [*self.pieces, (self.committed, release)]


def assert_tiles(pieces: list[tuple[int, int]], release: int) -> None:
    """Every sample in exactly one piece: no word can be lost or typed twice."""
    assert pieces[0][0] == 0 and pieces[-1][1] == release
    for (_, end), (start, _) in zip(pieces, pieces[1:], strict=False):
        assert end == start


def cuts_in_pauses(pieces: list[tuple[int, int]], speech: list[tuple[int, int]]) -> bool:
    return all(not s < end < e for _, end in pieces[:-1] for s, e in speech)


def test_each_pause_commits_the_piece_before_it_once_confirmed() -> None:
    speech = [(20, 300), (360, 700), (780, 1000), (1100, 1600), (1700, 1900)]
    pieces = Replay(speech).run(release=1910)
    assert_tiles(pieces, 1910)
    # Fed 0.1 s at a time: the draft at 3.3 s is confirmed by the one at 7.3 s, ...;
    # the draft of the last pause (16.3 s) is committed at the release, which decodes
    # only the last sentence.
    assert pieces == [(0, 330), (330, 730), (730, 1030), (1030, 1630), (1630, 1910)]
    assert cuts_in_pauses(pieces, speech)


def test_drafts_that_end_sentences_are_committed_in_their_own_pause() -> None:
    speech = [(20, 300), (360, 700), (780, 1000), (1100, 1600), (1700, 1900)]
    replay = Replay(speech, sentences=True)
    pieces = replay.run(release=1910)
    assert_tiles(pieces, 1910)
    # Each draft (made 0.25 s into a pause, decoded in 0.2 s) is final at once.
    assert pieces == [(0, 330), (330, 730), (730, 1030), (1030, 1630), (1630, 1910)]
    assert cuts_in_pauses(pieces, speech)


def test_a_sentence_is_final_before_the_next_one_is_spoken() -> None:
    # The first piece's commit comes in its own pause: by 5.5 s, long before the next
    # pause (9 s), where a draft that stops mid-sentence would be confirmed.
    speech = [(20, 500), (560, 900), (980, 1200)]
    replay = Replay(speech, sentences=True)
    for length in range(10, 560, 10):
        replay.step(length)
    assert replay.pieces == [(0, 530)]
    waiting = Replay(speech)
    for length in range(10, 560, 10):
        waiting.step(length)
    assert waiting.pieces == []
    # The next sentence, decoded after the first, is final in its own pause too.
    for length in range(560, 980, 10):
        replay.step(length)
    assert replay.pieces == [(0, 530), (530, 930)]


def test_the_first_piece_waits_until_enough_is_heard() -> None:
    # A first draft of 3.3 s whose text holds two sentences: heard alone, the model errs
    # most ("And so am I fellow Americans. Ask."), so it is not final in its own pause;
    # the next pause's draft, 7 s of audio, confirms it.
    speech = [(20, 300), (360, 700), (780, 1000)]
    replay = Replay(speech, sentences=True, sentence_count=2)
    for length in range(10, 700, 10):
        replay.step(length)
    assert replay.pieces == []
    pieces = replay.run(release=1010)
    assert pieces[0] == (0, 330)
    assert_tiles(pieces, 1010)


def test_a_draft_a_word_later_does_not_confirm_the_one_before() -> None:
    # A slow machine: each draft takes 1 s, so the draft after the pause at 3 s comes at
    # the short pause after the next word (4.5 s). It heard 1.2 s more: too little to
    # confirm the first (and the first piece needs 4.5 s heard anyway). The draft of the
    # pause at 7.3 s confirms the latest draft it heard 1.5 s more than: 0-4.5 s.
    speech = [(20, 300), (360, 420), (480, 700), (780, 1000)]
    pieces = Replay(speech, decode=100).run(release=1010)
    assert pieces[0] == (0, 450)
    assert_tiles(pieces, 1010)
    assert cuts_in_pauses(pieces, speech)


def test_confirmable_picks_the_last_draft_heard_enough_before() -> None:
    assert confirmable([300, 450], 599, LIVE) == 0  # 1.5 s after the first only
    assert confirmable([300, 450], 600, LIVE) == 1
    assert confirmable([300, 450], 400, LIVE) is None
    assert confirmable([], 600, LIVE) is None


def test_drafts_that_disagree_leave_the_words_to_the_release() -> None:
    # Never confirmed while the user speaks; the release commits the latest draft as it
    # is (nothing can confirm it any more) and decodes the rest.
    speech = [(20, 300), (360, 700), (780, 1000)]
    assert Replay(speech, agree=False).run(release=1010) == [(0, 730), (730, 1010)]


def test_a_long_pause_commits_a_short_piece() -> None:
    speech = [(20, 300), (800, 1000)]
    pieces = Replay(speech).run(release=1010)
    assert pieces == [(0, 330), (330, 1010)]
    assert cuts_in_pauses(pieces, speech)


def test_no_pause_leaves_everything_to_the_release() -> None:
    pieces = Replay([(20, 800)]).run(release=805)
    assert pieces == [(0, 805)]


def test_very_long_speech_is_cut_by_windows() -> None:
    pieces = Replay([(20, 3000)]).run(release=3005)
    assert_tiles(pieces, 3005)
    assert len(pieces) == 3  # two windows (12 s each), then the tail


def test_a_pause_right_before_release_is_the_final_piece() -> None:
    # The draft of the last pause is still running at release: it ends first, confirms
    # the draft before it, and is itself the final piece (nothing said after it).
    speech = [(20, 300), (360, 700)]
    pieces = Replay(speech, decode=50).run(release=730)
    assert pieces == [(0, 330), (330, 730)]


def test_silence_only_commits_nothing_before_release() -> None:
    replay = Replay([])
    pieces = replay.run(release=1500)
    assert_tiles(pieces, 1500)
    # Windows may cut the silence, but no piece has text: no commit event is sent.
    assert not any(replay.has_text(*piece) for piece in pieces)


def test_a_short_sound_is_not_committed_alone() -> None:
    # 0.1 s of sound, a pause: its draft has no text, so it stays for the next piece.
    speech = [(20, 30), (100, 400), (460, 600)]
    pieces = Replay(speech).run(release=610)
    assert_tiles(pieces, 610)
    assert pieces[0][0] == 0 and pieces[0][1] > 400


def test_safe_cut_takes_the_quietest_stretch_not_the_quietest_frame() -> None:
    frame = 10
    loud, gap, dip = 1.0, 0.05, 0.0
    levels = [loud] * 40
    levels[10] = dip  # one silent frame inside a word (a stop consonant)
    for i in range(25, 25 + CUT_SPAN + 1):
        levels[i] = gap  # a real gap between words: several quiet frames
    cut = safe_cut(levels, 0, 40 * frame, frame)
    assert cut is not None and 25 * frame <= cut <= (26 + CUT_SPAN) * frame


def test_safe_cut_needs_enough_frames() -> None:
    assert safe_cut([0.0] * 3, 0, 30, 10) is None
    assert safe_cut([1.0] * 10, 0, 100, 10) is not None


# -- running drafts: words final in the middle of a sentence (commit.py, RUNNING) --------

# Running drafts 1.5 s apart while the speaker talks, as the daemon runs them.
RUNNING_LIVE = LivePolicy.from_seconds(long_pause=2.0, sample_rate=RATE, running=1.5)


def after_commit(**fields: object) -> StreamState:
    """A stream with text committed before 500 (running drafts need it), whose speech
    after it begins at 540."""
    values: dict[str, object] = {"committed": 500, "has_context": True, "speech_from": 540}
    values.update(fields)
    return StreamState(**values)  # type: ignore[arg-type]


# The latest draft: a running one, of 500..840, holding six words.
RUNNING_DRAFT: dict[str, object] = {
    "draft": (500, 840),
    "draft_has_text": True,
    "draft_at_pause": False,
    "draft_words": 6,
}

RUNNING_GOLDEN: list[tuple[str, StreamState, LiveDecision]] = [
    # Talking since 540: a running draft once 1.5 s were heard from the first word.
    ("talking 1.4 s", after_commit(length=680, spoken=675), Wait(690)),
    (
        "talking 1.5 s: running draft",
        after_commit(length=690, spoken=685),
        StartDraft(500, 690, at_pause=False),
    ),
    # None in the first piece: nothing of it is committed from them.
    (
        "first piece: none",
        StreamState(length=190, committed=0, spoken=185, speech_from=40),
        Wait(210),
    ),
    # Drafts never delay anyone.
    ("worker busy: none", after_commit(length=690, spoken=685, worker_idle=False), Wait(None)),
    # A pause: the pause's draft, as without running drafts.
    ("in a pause: the pause's draft", after_commit(length=720, spoken=690), StartDraft(500, 720)),
    # The next running draft 1.5 s after the last one ended.
    (
        "1.4 s after a running draft",
        after_commit(
            length=830, spoken=825, draft=(500, 690), draft_has_text=True, draft_at_pause=False
        ),
        Wait(840),
    ),
    (
        "1.5 s after a running draft: the next",
        after_commit(
            length=840, spoken=835, draft=(500, 690), draft_has_text=True, draft_at_pause=False
        ),
        StartDraft(500, 840, at_pause=False),
    ),
    # Two running drafts in a row begin with the same four words: they are final.
    (
        "two agree on four words",
        after_commit(length=845, spoken=840, agreed=4, **RUNNING_DRAFT),
        CommitWords(4),
    ),
    # A running draft is never final by itself: the model ends almost any audio with a
    # full stop, and its last word may be cut.
    (
        "a running draft that ends a sentence",
        after_commit(length=845, spoken=840, draft_ends_sentence=True, **RUNNING_DRAFT),
        Wait(865),
    ),
    (
        "a running draft, then a long silence",
        after_commit(length=1100, spoken=840, **RUNNING_DRAFT),
        StartDraft(500, 1100),
    ),
    # The speaker stopped: the pause gets its own draft, even when the running draft
    # heard every word (it may have cut the last).
    (
        "pause after a running draft that heard it all",
        after_commit(length=860, spoken=830, **RUNNING_DRAFT),
        StartDraft(500, 860),
    ),
    # Very long speech without a pause is still cut by windows.
    ("no pause for 12 s", after_commit(length=1700, spoken=1700, **RUNNING_DRAFT), CutWindow()),
    # Not on a machine whose last decode took over 0.3 s: the running drafts would keep
    # the worker busy, and the pause's draft and the release would wait for them.
    (
        "the last decode took 0.3 s",
        after_commit(length=690, spoken=685, decode_time=30),
        StartDraft(500, 690, at_pause=False),
    ),
    (
        "the last decode took 0.31 s",
        after_commit(length=690, spoken=685, decode_time=31),
        Wait(710),
    ),
    (
        "running draft in flight",
        after_commit(length=900, spoken=895, draft_running=True),
        Wait(NEVER),
    ),
]


@pytest.mark.parametrize(
    ("name", "state", "expected"), RUNNING_GOLDEN, ids=[g[0] for g in RUNNING_GOLDEN]
)
def test_running_golden(name: str, state: StreamState, expected: LiveDecision) -> None:
    assert decide_live(POLICY, RUNNING_LIVE, state) == expected


RUNNING_RELEASE: list[tuple[str, StreamState, CommitDraft | CommitWords | None]] = [
    # Spoken after the latest running draft: its words but the last two are final, and
    # typed while the tail after them is decoded.
    (
        "spoke after a running draft",
        after_commit(length=905, spoken=900, ended=True, **RUNNING_DRAFT),
        CommitWords(4),
    ),
    (
        "an agreement of five words",
        after_commit(length=905, spoken=900, ended=True, agreed=5, **RUNNING_DRAFT),
        CommitWords(5),
    ),
    (
        "a running draft of two words",
        after_commit(length=905, spoken=900, ended=True, **{**RUNNING_DRAFT, "draft_words": 2}),
        None,
    ),
    # Silent since: nothing to commit; the pipeline takes the running draft as the final
    # piece if it ended a whole pause after the last word, or decodes the audio again.
    (
        "silent after a running draft",
        after_commit(length=905, spoken=830, ended=True, **RUNNING_DRAFT),
        None,
    ),
    (
        "no text committed before it",
        after_commit(length=905, spoken=900, ended=True, has_context=False, **RUNNING_DRAFT),
        None,
    ),
    ("cancelled", after_commit(length=905, spoken=900, cancelled=True, **RUNNING_DRAFT), None),
]


@pytest.mark.parametrize(
    ("name", "state", "expected"), RUNNING_RELEASE, ids=[g[0] for g in RUNNING_RELEASE]
)
def test_running_release_golden(
    name: str, state: StreamState, expected: CommitDraft | CommitWords | None
) -> None:
    assert decide_release(RUNNING_LIVE, state) == expected


def test_without_running_drafts_nothing_changes() -> None:
    """The running drafts are the live policy's ``running``; 0 (the golden cases above
    ``RUNNING_GOLDEN``) makes none."""
    state = after_commit(length=690, spoken=685)
    assert decide_live(POLICY, LIVE, state) == Wait(710)
