"""Live streams: committed pieces of text sent while the user still speaks.

The policy (when a piece is final) is ``commit.py``; this module carries its decisions
out on a job, on the event loop: it records each piece, moves the job's ``committed``
position, and sends the ``commit`` event (docs/protocol.md, "Live dictation"). Every
word of the result is in exactly one piece: a piece's segments become the job's
``segments`` (the earlier text the next piece is conditioned on and the result is merged
from), and the result's text is the pieces joined.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from whisperd.daemon.commit import (
    LONG_PAUSE,
    RUNNING,
    CommitDraft,
    CommitWords,
    LivePolicy,
    confirmable,
    safe_cut,
)
from whisperd.daemon.jobs import Draft, Job, Piece
from whisperd.daemon.streaming import StreamState
from whisperd.protocol import CommitReply, SegmentReply

if TYPE_CHECKING:
    from whisperd.engine import Segment, Transcription


def is_live(job: Job) -> bool:
    return job.stream is not None and bool(job.request.options.get("live"))


@functools.cache
def policy() -> LivePolicy:
    return LivePolicy.from_seconds(LONG_PAUSE, _rate(), running=RUNNING)


def has_text(draft: Draft | None) -> bool:
    """Whether a draft decoded some text (a draft skipped as too short, or in which the
    VAD found no speech, is not committed: its audio joins the next piece)."""
    return draft is not None and not draft.result.skipped and bool(draft.result.text.strip())


# How a draft's text ends when the model heard a whole sentence ("..." is a trailing-off
# hesitation; closing quotes and brackets after the full stop are allowed).
SENTENCE_ENDS = (".", "!", "?")
CLOSING = "\"')]\u201d\u2019"


def ends_sentence(draft: Draft | None) -> bool:
    """Whether a draft's text ends a sentence (then it is committed at once, commit.py)."""
    if not has_text(draft):
        return False
    assert draft is not None
    return _ends(draft.result.text.strip().rstrip(CLOSING))


# Words whose full stop does not end a sentence ("Dr. Smith will call."); initials
# ("J. F. Kennedy") and dotted abbreviations ("p.m.", "e.g.") are recognised by shape.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st sr jr mt vs etc approx dept inc ltd co no fig jan feb mar apr "
    "jun jul aug sep sept oct nov dec".split()
)


def sentences(draft: Draft | None) -> int:
    """How many sentences a draft's text holds: its sentence ends before the last word,
    plus one (a trailing-off "..." ends none, nor an abbreviation's or initial's dot)."""
    if not has_text(draft):
        return 0
    assert draft is not None
    bare = [token.rstrip(CLOSING) for token in draft.result.text.split()[:-1]]
    return 1 + sum(1 for token in bare if _ends(token) and not _abbreviation(token))


def _abbreviation(token: str) -> bool:
    """Whether a word ending in a full stop (closing quotes taken off) is an
    abbreviation or an initial; "!" and "?" always end a sentence."""
    if not token.endswith("."):
        return False
    stem = token.rstrip(".").lstrip("\"'([\u201c\u2018")
    return len(stem) == 1 or "." in stem or stem.lower() in ABBREVIATIONS


def _ends(token: str) -> bool:
    return token.endswith(SENTENCE_ENDS) and not token.endswith("..")


def speech_start(levels: list[float], start: int, end: int, floor: float) -> int:
    """Where speech begins in samples ``start``..``end`` of a stream: the first 30 ms
    level frame louder than a tenth of the stretch's loudest (and than ``floor``), as
    ``Levels.speech_end`` finds where it stops; ``start`` when none is."""
    from whisperd.audio import LEVEL_FRAME, PAUSE_FRACTION

    first = -(-start // LEVEL_FRAME)
    values = levels[first : end // LEVEL_FRAME]
    threshold = max(floor, max(values, default=0.0) * PAUSE_FRACTION)
    for index, value in enumerate(values):
        if value >= threshold:
            return (first + index) * LEVEL_FRAME
    return start


def _rate() -> int:
    from whisperd.audio import SAMPLE_RATE

    return SAMPLE_RATE


def _text(segments: list[Segment]) -> str:
    return " ".join(s["text"] for s in segments if s["text"]).strip()


def send_piece(job: Job, text: str, start: int, end: int, final: bool = False) -> None:
    """Record a final piece of text and send it; an empty piece is recorded (the next
    piece's context starts after it) but sent only as the final one (the client learns
    the stream is complete)."""
    job.pieces.append(Piece(start, end, text))
    if not text and not final:
        return
    seq = job.commits_sent
    job.commits_sent += 1
    if not job.cancelled:
        rate = _rate()
        reply = CommitReply(
            job.request.id, seq, text, round(start / rate, 3), round(end / rate, 3), final
        )
        job.send(reply)


def new_draft(job: Job, draft: Draft) -> None:
    """A draft finished: the drafts before it, of the same piece and with text, are kept;
    the last of them that it heard MIN_CONFIRM more than is the one it may confirm
    (commit.py)."""
    old = job.draft
    earlier = [d for d in job.earlier if d.start == draft.start]
    if has_text(old) and old is not None and old.start == draft.start:
        earlier.append(old)
    job.earlier = earlier
    # Only a pause's draft confirms a pause's draft whole: a running draft's end may cut
    # a word, and one made before the next pause heard less than it (two drafts of jfk's
    # first 5 s agree on "And so am I fellow Americans", where the next pause's draft
    # hears "my"). Running drafts make words final where two agree (``agreed_words``).
    at_pause = [d for d in earlier if d.at_pause] if draft.at_pause else []
    index = confirmable([d.end for d in at_pause], draft.end, policy())
    job.previous = None if index is None else at_pause[index]
    job.draft = draft


def agreed_words(earlier: str, later: str) -> int:
    """How many of ``later``'s first words spell the same words as ``earlier``'s (case
    and punctuation aside), not counting either text's last word: each was heard at the
    edge of its draft's audio, perhaps cut in the middle."""
    from whisperd.engine.guard import words

    before, after = earlier.split(), later.split()
    limit = min(len(before), len(after)) - 1
    count = 0
    while count < limit and words(before[count]) == words(after[count]):
        count += 1
    return count


def agreement(job: Job) -> int:
    """How many words of the latest running draft its piece's draft before it agrees
    with (``agreed_words``); 0 for a draft made at a pause."""
    latest = job.draft
    if latest is None or latest.at_pause or not job.earlier or not has_text(latest):
        return 0
    before = job.earlier[-1]
    if before.start != latest.start or latest.start != job.committed:
        return 0
    return agreed_words(before.result.text, latest.result.text)


def commit(job: Job, decision: CommitDraft | CommitWords) -> None:
    """Carry out a commit decision of the policy (commit.py)."""
    if isinstance(decision, CommitWords):
        commit_words(job, decision)
    else:
        commit_draft(job, decision)


def commit_words(job: Job, decision: CommitWords) -> None:
    """The first ``decision.words`` words of the latest draft are final: send them as a
    piece that starts and ends at ``committed`` (where they end in the audio is not
    known); the rest of the draft stays a draft of the same audio, after them."""
    from whisperd.engine.result import segment

    draft = job.draft
    assert draft is not None and decision.words > 0
    tokens = draft.result.text.split()
    head, rest = " ".join(tokens[: decision.words]), " ".join(tokens[decision.words :])
    rate, at = _rate(), job.committed
    job.words_end = max(job.words_end, draft.end)  # they were heard in the draft
    _send_segments(job, [segment(at / rate, at / rate, head)])
    _keep_rest(job, at, draft, rest)
    send_piece(job, head, at, at)


def confirmation(job: Job) -> tuple[str, str] | None:
    """The previous draft's words as the latest draft spells them, and the latest draft's
    words after them; None unless the latest draft begins with exactly those words."""
    previous, latest = job.previous, job.draft
    if previous is None or latest is None or previous.start != job.committed:
        return None
    if latest.start != previous.start or latest.end <= previous.end:
        return None
    return split_confirmed(previous.result.text, latest.result.text)


def split_confirmed(earlier: str, later: str) -> tuple[str, str] | None:
    """(the tokens of ``later`` holding the words of ``earlier``, the rest) when ``later``
    begins with the words of ``earlier`` (case and punctuation aside); None otherwise."""
    from whisperd.engine.guard import words

    wanted = words(earlier)
    tokens = later.split()
    got: list[str] = []
    for index, token in enumerate(tokens):
        got.extend(words(token))
        if len(got) >= len(wanted):
            if not wanted or got != wanted:
                return None
            return " ".join(tokens[: index + 1]), " ".join(tokens[index + 1 :])
    return None


def commit_draft(job: Job, decision: CommitDraft) -> None:
    """The draft over ``decision.start``..``decision.end`` is final: the previous draft,
    confirmed by the latest, or the latest after a long pause. Commit its text."""
    previous = job.previous
    if previous is not None and (previous.start, previous.end) == (decision.start, decision.end):
        _commit_confirmed(job, previous)
        return
    draft = job.draft
    assert draft is not None and (draft.start, draft.end) == (decision.start, decision.end)
    _send_segments(job, draft.result.segments)
    job.committed = decision.end
    job.draft = job.previous = None
    job.earlier = []
    send_piece(job, _text(draft.result.segments), decision.start, decision.end)


def _send_segments(job: Job, segments: list[Segment]) -> None:
    job.segments.extend(segments)
    if not job.cancelled:  # a draft sends no segments while it may be thrown away
        for segment in segments:
            job.send(SegmentReply(job.request.id, segment))


def _commit_confirmed(job: Job, previous: Draft) -> None:
    from whisperd.engine.result import segment

    latest, split = job.draft, confirmation(job)
    assert latest is not None and split is not None
    confirmed, rest = split
    rate = _rate()
    _send_segments(job, [segment(previous.start / rate, previous.end / rate, confirmed)])
    job.committed = previous.end
    _keep_rest(job, previous.end, latest, rest)
    send_piece(job, confirmed, previous.start, previous.end)


def _keep_rest(job: Job, start: int, latest: Draft, rest: str) -> None:
    """After a commit from the latest draft: its words after those committed (``rest``,
    heard over ``start``..its end) are the draft of what follows (confirmed by a later
    draft, or the answer at release). Empty, it is no draft: the model may have missed
    what was said there, so the release decodes it."""
    from whisperd.engine import Transcription
    from whisperd.engine.result import segment

    job.draft = job.previous = None
    job.earlier = []
    if rest:
        rate = _rate()
        rest_segment = segment(start / rate, latest.end / rate, rest)
        language, seconds = latest.result.language, (latest.end - start) / rate
        result = Transcription.of_segments([rest_segment], language, seconds, latest.result.path)
        job.draft = Draft(start, latest.end, result, latest.at_pause)


def commit_window(job: Job, segments: list[Segment], start: int, cut: int) -> None:
    """A stream window's text is final (long speech without a pause)."""
    send_piece(job, _text(segments), start, cut)


def window_cut(job: Job, search_seconds: float) -> int:
    """Where the next window of a live stream ends: in the middle of the quietest stretch
    of its last ``search_seconds`` (``commit.safe_cut``), so that the committed text ends
    between two words."""
    from whisperd.audio import LEVEL_FRAME, quiet_cut

    assert job.stream is not None
    length = job.stream.length
    # Not inside words committed mid-sentence: the window's text is forced to begin with
    # them, so its audio must hold them whole.
    low = max(job.committed, length - int(search_seconds * _rate()))
    low = min(max(low, job.words_end), length)
    cut = safe_cut(job.stream.levels.values, low, length, LEVEL_FRAME)
    if cut is None:  # only the stretch searched is converted to find the cut
        cut = low + quiet_cut(job.stream.slice(low, length), 0, length - low, search_seconds)
    return cut


def finish(job: Job, result: Transcription, earlier: int) -> Transcription:
    """At release: the tail after the last commit (``result``'s segments after the first
    ``earlier``) is the final piece; the result's text is every piece joined."""
    tail = result.segments[earlier:]
    send_piece(job, _text(tail), job.committed, int(round(result.duration * _rate())), True)
    result.text = " ".join(piece.text for piece in job.pieces if piece.text)
    return result


def stream_state(job: Job, min_rms: float, worker_idle: bool) -> StreamState:
    """What the streaming and commit policies need to know about a stream (live or not)."""
    assert job.stream is not None
    draft, levels = job.draft, job.stream.levels
    spoken = levels.speech_end(job.committed, min_rms)
    return StreamState(
        length=job.stream.length,
        committed=job.committed,
        spoken=spoken,
        ended=job.ended,
        cancelled=job.cancelled,
        window_running=job.window is not None,
        draft_running=job.drafting is not None,
        worker_idle=worker_idle,
        draft=None if draft is None else (draft.start, draft.end),
        draft_has_text=has_text(draft),
        draft_ends_sentence=ends_sentence(draft),
        draft_sentences=sentences(draft),
        draft_speech_from=0
        if draft is None
        else speech_start(levels.values, draft.start, draft.end, min_rms),
        previous=None if job.previous is None else (job.previous.start, job.previous.end),
        previous_confirmed=confirmation(job) is not None,
        has_context=any(piece.text for piece in job.pieces),
        draft_at_pause=draft is None or draft.at_pause,
        draft_words=len(draft.result.text.split()) if draft is not None and has_text(draft) else 0,
        agreed=agreement(job),
        decode_time=round(job.last_decode * _rate()),
        speech_from=0  # only the live policy's running drafts read it
        if spoken is None or not is_live(job)
        else speech_start(levels.values, job.committed, job.stream.length, min_rms),
    )
