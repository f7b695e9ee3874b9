"""The live commit policy: when a dictation's text becomes final while the user speaks.

A stream sent with ``"options": {"live": true}`` is cut into *pieces*; each piece's text
is sent to the client as a ``commit`` event as soon as it is final, and never rewritten
(docs/protocol.md, "Live dictation"). Pieces end where the speaker paused:

- at a pause the streaming policy (``streaming.decide``) starts a draft of everything
  uncommitted up to now; when that draft has decoded text that ends a sentence and
  covers at least MIN_SENTENCE seconds, this policy commits it at once (any other draft
  waits to be confirmed, see MIN_SENTENCE): the piece is the draft's audio,
  ``committed`` moves to the draft's end (inside the pause, so no word is split), and
  the next piece is decoded after it with the committed pieces as the model's context;
- very long speech without a pause is cut by a stream window at the quietest stretch of
  its last seconds (``safe_cut``), and the window's text is committed;
- at release a draft still waiting to be confirmed is committed as it is when the user
  spoke after it (``decide_release``), and only the tail after the last commit is
  decoded (or the last draft is the tail's text when nothing was said after it): the
  final piece.

Between pauses, *running drafts* (``LivePolicy.running``, made while the speaker talks
and the worker is idle, on a machine fast enough: RUNNING_BUDGET) let words become final
in the middle of a sentence:

- when a running draft and the draft before it (of the same piece) begin with the same
  words, those words are committed but for the earlier draft's last (heard at the edge of
  its audio, perhaps cut) and the later draft's last: ``CommitWords``, a piece whose audio
  end is not known, so ``committed`` does not move and the next decode is forced to
  begin with these words (agreement of two drafts, as LocalAgreement in whisper_streaming);
- at the release, the latest running draft's words but its last RELEASE_KEEP are final
  (``decide_release``): the client types them while the tail is decoded after them.

A draft is not committed when it gave no text (too short for the model, or the VAD found
no speech in it): its audio stays uncommitted and becomes part of the next piece, so a
short word is never dropped by a commit.

Pure functions of positions in samples (like ``streaming.py``), replayed as a few numbers
by the golden tests in tests/unit/daemon/test_commit_policy.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from whisperd.daemon.streaming import (
    NEVER,
    Decision,
    StartDraft,
    StreamPolicy,
    StreamState,
    Wait,
    decide,
)


@dataclass(frozen=True)
class CommitDraft:
    """The last draft's text is final: send it, and move ``committed`` to ``end``."""

    start: int
    end: int


@dataclass(frozen=True)
class CommitWords:
    """The first ``words`` words of the last draft (a running draft) are final: a piece
    in the middle of a sentence. Where its audio ends is not known, so ``committed``
    stays; the words join the prefix the next decode is forced to begin with."""

    words: int


LiveDecision = Decision | CommitDraft | CommitWords

# When the speaker pauses, the draft of the pause is committed at once if its text ends a
# sentence and it holds at least MIN_SENTENCE seconds from its first word: the next
# sentence, which the draft has not heard, rarely changes how the model hears the end of
# this one, and waiting for the next pause to confirm it cost 4.5 s per piece. The model
# ends almost any audio with a full stop, also a phrase cut at a comma, so a short draft
# is not trusted to end a sentence: "And so my fellow Americans" alone came out
# "And so am I fellow Americans.", and the MIT licence's comma phrases became sentences
# (6 word errors against a file request's 3 on the shared recordings; 4 with a 2.5 s
# minimum, bench/live.py). A draft that stops mid-sentence (no full stop, "...", or
# short) is where the words after it matter ("the lazy nog" at a pause, "the lazy dog"
# once the next words were heard), so it is not final at once: a later pause's draft,
# which covers it and the words after it (MIN_CONFIRM more), must begin with the same
# words (it *confirms* it); then those words are committed, spelled as the later draft
# has them. If the user
# stays silent for LONG_PAUSE after such a draft, nothing can confirm it soon: it is
# committed as it is. At the release nothing can confirm it any more: a pending draft of
# MIN_SENTENCE with speech after it is committed then (``decide_release``), so that the
# release decodes only the words after it.
MIN_SENTENCE = 2.5
LONG_PAUSE = 2.0
# Where each draft ends depends on when the last decode finished: on a machine slower than
# the speaker (or with a client sending faster than real time) the next draft often comes
# a word after the last one. Such a draft heard too little after the earlier one to
# confirm it: the pieces became single words ("copy,", "publish,") and the model heard the
# words after them as new sentences ("the license" for "sublicense"). A draft confirms an
# earlier one only when it heard MIN_CONFIRM seconds more; it is compared with the latest
# earlier draft of the piece that it did (bench/live.py --lag).
MIN_CONFIRM = 1.5
# The first piece of a dictation has no committed text before it to be decoded with:
# the model hears its few seconds alone, and there it errs most. With drafts made a word
# later than the pauses, "And so my fellow Americans, ask" (3.9 s) came out "And so am I
# fellow Americans. Ask." twice, once confirming the draft before it and once as a
# sentence of its own; the file request of the same 11 s hears "my". So until some text
# is committed, a draft must hold FIRST_HEARD seconds from its first word to confirm an
# earlier one, to be committed at the release with words after it (a shorter one is
# decoded again with them), and to be committed at once unless its text is one sentence
# (a short dictation's sentence is still typed in its pause; "And so am I fellow
# Americans. Ask." is two, the last a word cut by the draft's end). A long pause still
# commits a short one as it is, and one with nothing said after it is the final piece.
FIRST_HEARD = 4.5
# While the speaker talks without a pause, a running draft of the piece is made when the
# worker is idle and RUNNING seconds were heard since the last draft of the piece ended:
# two in a row that agree make words final mid-sentence, so a long sentence is typed while
# it is spoken, and the release has only its last words to decode and type (issue 12: the
# final piece of a 30 s dictation took 410-460 ms to decode and 290 ms more to type).
RUNNING = 1.5
# ... but only on a machine that decodes a piece in RUNNING_BUDGET seconds at most (the
# stream's last decode): where a decode takes longer, running drafts keep the worker busy,
# the pause's draft waits for them and the release waits for the one in flight. On a
# 2-vCPU Zen 4 a decode of a piece with its context took 0.45-1.0 s (the forced prefix
# grows with each word committed in the piece), and with running drafts the release at
# the last word of 60 s took 1.6 s instead of 0.7-0.85 s (bench/live_keys.md).
RUNNING_BUDGET = 0.3
# At the release, the latest running draft's words are committed but for its last
# RELEASE_KEEP: those were heard at the edge of its audio (perhaps cut in the middle), and
# the release's decode hears them whole, after the words committed.
# Neither is done before some text is committed: the first seconds of a dictation, heard
# without the words after them, are where the model errs most, and two drafts of them
# agree on the error as readily ("And so am I fellow Americans" in two running drafts of
# jfk made a word late, where the file request hears "my").
RELEASE_KEEP = 2


@dataclass(frozen=True)
class LivePolicy:
    """The live limits in samples (see MIN_SENTENCE, LONG_PAUSE, MIN_CONFIRM and
    FIRST_HEARD)."""

    long_pause: int
    min_sentence: int = 0
    min_confirm: int = 0
    first_heard: int = 0
    running: int = 0  # running drafts this far apart while the speaker talks; 0: none
    running_budget: int = 0  # ... when the last decode took at most this long

    @classmethod
    def from_seconds(
        cls,
        long_pause: float,
        sample_rate: int,
        min_sentence: float = MIN_SENTENCE,
        min_confirm: float = MIN_CONFIRM,
        first_heard: float = FIRST_HEARD,
        running: float = 0.0,
        running_budget: float = RUNNING_BUDGET,
    ) -> LivePolicy:
        seconds = (long_pause, min_sentence, min_confirm, first_heard, running, running_budget)
        return cls(*(math.ceil(value * sample_rate) for value in seconds))


def decide_live(policy: StreamPolicy, live: LivePolicy, state: StreamState) -> LiveDecision:
    """What to do with a live stream now: commit a draft that ends a sentence, a
    confirmed draft or a draft after a long pause first, otherwise what the streaming
    policy says (a window, a draft at a pause, or wait)."""
    if state.ended or state.cancelled or state.window_running or state.draft_running:
        return Wait(NEVER)  # the end of the running piece, or the release, decides
    previous = state.previous
    if _confirmed(live, state) and previous is not None:
        return CommitDraft(previous[0], previous[1])
    draft = state.draft
    if draft is None or draft[0] != state.committed or not state.draft_has_text:
        return _running(policy, live, state, decide(policy, state))
    if not state.draft_at_pause:  # a running draft: final only where two agree
        if state.agreed > 0 and state.has_context:
            return CommitWords(state.agreed)
        # The next pause is drafted as if there were no running draft: this one may
        # have cut the last word it heard.
        return _running(policy, live, state, decide(policy, replace(state, draft=None)))
    if state.draft_ends_sentence and _long_enough(live, state, draft, at_once=True):
        return CommitDraft(draft[0], draft[1])
    spoken = state.spoken
    if spoken is not None and spoken > draft[1]:
        # The user went on: a later pause's draft confirms.
        return _running(policy, live, state, decide(policy, state))
    # The user is silent after the draft: commit it once the pause is long.
    quiet_since = draft[1] - policy.pause if spoken is None else spoken
    if state.length >= quiet_since + live.long_pause:
        return CommitDraft(draft[0], draft[1])
    return Wait(quiet_since + live.long_pause)


def _running(
    policy: StreamPolicy, live: LivePolicy, state: StreamState, decision: LiveDecision
) -> LiveDecision:
    """A running draft instead of ``decision`` (when it is to wait) while the speaker
    talks, once some text is committed, on a machine that decodes fast enough
    (RUNNING_BUDGET): the worker is idle and RUNNING seconds were heard since the piece's
    last draft ended (or since its first word)."""
    if not isinstance(decision, Wait) or live.running <= 0 or not state.worker_idle:
        return decision
    if not state.has_context:
        return decision  # nothing of the first piece is committed from them (RELEASE_KEEP)
    if state.decode_time > live.running_budget:
        return decision  # too slow a machine (RUNNING_BUDGET)
    spoken = state.spoken
    if spoken is None or state.length - spoken >= policy.pause:
        return decision  # silence so far, or a pause: the pause's draft is the streaming policy's
    if state.length - state.committed > policy.draft_max:
        return decision
    since = max(state.committed, state.speech_from)  # silence before the first word: no
    if state.draft is not None and state.draft[0] == state.committed:
        since = max(since, state.draft[1])
    run_at = since + live.running
    if state.length < run_at:
        return Wait(run_at if decision.next_at is None else min(decision.next_at, run_at))
    return StartDraft(state.committed, state.length, at_pause=False)


def decide_release(live: LivePolicy, state: StreamState) -> CommitDraft | CommitWords | None:
    """At the release (``state.ended``), before the tail is decoded: a draft still
    pending (made at a pause, not yet final) of at least MIN_SENTENCE seconds (and
    FIRST_HEARD before any text is committed) that the user spoke after is final now, so
    the release decodes only the audio after it (and the client types it meanwhile). A
    shorter one is decoded again with the tail: alone it is where the model errs most
    ("And so am I fellow Americans"). A running draft that the user spoke after gives
    its words but the last RELEASE_KEEP (``CommitWords``), once some text is committed.
    None: nothing to commit; the tail is decoded from ``committed`` (or, when nothing
    was said after the last draft, that draft is the final piece: ``draft_verdict``)."""
    if state.cancelled:
        return None
    previous = state.previous
    if _confirmed(live, state) and previous is not None:
        return CommitDraft(previous[0], previous[1])
    draft = state.draft
    if draft is None or draft[0] != state.committed or not state.draft_has_text:
        return None
    if state.spoken is None or state.spoken <= draft[1]:
        return None  # silent since: the draft is the final piece as it is
    if not state.draft_at_pause:
        words = max(state.agreed, state.draft_words - RELEASE_KEEP)
        if words > 0 and state.has_context:
            return CommitWords(words)
        return None
    if not _long_enough(live, state, draft):
        return None
    return CommitDraft(draft[0], draft[1])


def _long_enough(
    live: LivePolicy, state: StreamState, draft: tuple[int, int], at_once: bool = False
) -> bool:
    """Whether a draft holds MIN_SENTENCE seconds from its first speech to its end (the
    silence before the first word does not count: jfk's "And so my fellow Americans" is
    1.9 s of speech after 0.3 s of silence), and FIRST_HEARD seconds when no text was
    committed before it (``at_once``: or a single sentence)."""
    if not _heard_enough(live, state, draft) and not (at_once and state.draft_sentences == 1):
        return False
    return _from_first_word(state, draft) >= live.min_sentence


def _heard_enough(live: LivePolicy, state: StreamState, draft: tuple[int, int]) -> bool:
    """Whether the model heard enough in a draft to trust it: FIRST_HEARD seconds from
    its first speech (silence before the first word tells the model nothing) when no
    text was committed before it."""
    return state.has_context or _from_first_word(state, draft) >= live.first_heard


def _from_first_word(state: StreamState, draft: tuple[int, int]) -> int:
    """The draft's audio from its first speech to its end (samples)."""
    return draft[1] - max(draft[0], state.draft_speech_from)


def _confirmed(live: LivePolicy, state: StreamState) -> bool:
    """Whether the last draft confirms the previous one: it begins with its words, heard
    MIN_CONFIRM more, and (before any text is committed) FIRST_HEARD in all."""
    previous, draft = state.previous, state.draft
    if previous is None or draft is None or previous[0] != state.committed:
        return False
    if not state.previous_confirmed or draft[1] - previous[1] < live.min_confirm:
        return False
    return _heard_enough(live, state, draft)


def confirmable(earlier: Sequence[int], latest: int, live: LivePolicy) -> int | None:
    """Which of a piece's earlier drafts (their ends, in order) the latest draft, ending
    at ``latest``, may confirm: the last that it heard MIN_CONFIRM more than; None: none."""
    for index in range(len(earlier) - 1, -1, -1):
        if latest - earlier[index] >= live.min_confirm:
            return index
    return None


# A window of a long pause-free stretch is cut in the middle of the quietest CUT_SPAN
# level frames (30 ms each) of its last seconds: a gap between words lasts 100-200 ms,
# while the quietest single frame may be the closure of a stop consonant inside a word.
CUT_SPAN = 5


def safe_cut(levels: Sequence[float], low: int, high: int, frame: int) -> int | None:
    """Where to cut a stream whose audio ``low``..``high`` (samples) is searched: the
    middle of the quietest run of ``CUT_SPAN`` whole level frames in it (the latest of
    equally quiet runs); None when fewer frames than that were measured there."""
    first = -(-low // frame)
    last = min(high // frame, len(levels))
    if last - first < CUT_SPAN:
        return None
    best_start, best_energy = first, float("inf")
    for start in range(first, last - CUT_SPAN + 1):
        energy = sum(value * value for value in levels[start : start + CUT_SPAN])
        if energy <= best_energy:
            best_start, best_energy = start, energy
    return best_start * frame + (CUT_SPAN * frame) // 2
