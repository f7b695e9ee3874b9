"""Decoding a live piece with the committed audio before it as context (daemon/pieces.py):
the context chosen, the forced prefix taken off, and the fallback when it fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tests.unit.daemon.fakes import FakeEngine, silence, tone
from whisperd.audio import SAMPLE_RATE, PcmFormat, Samples
from whisperd.daemon.jobs import Job, Piece
from whisperd.daemon.pieces import context, decode_piece, strip_prefix
from whisperd.engine import Transcription
from whisperd.protocol import Transcribe

S = SAMPLE_RATE


def test_context_takes_whole_recent_pieces_within_the_limits() -> None:
    pieces = [Piece(0, 5 * S, "one."), Piece(5 * S, 9 * S, ""), Piece(9 * S, 12 * S, "two.")]
    # A piece 12..15 s: pieces starting within 8 s before it (5 s and 9 s), not 0 s.
    assert context(pieces, 12 * S, 15 * S, 8 * S, 28 * S) == (5 * S, "two", "one.")
    assert context(pieces, 12 * S, 15 * S, 12 * S, 28 * S) == (0, "one. two", "")
    # All of it within one window: a long piece has less context, or none.
    assert context(pieces, 12 * S, 35 * S, 12 * S, 28 * S) == (9 * S, "two", "one.")
    assert context(pieces, 12 * S, 45 * S, 12 * S, 28 * S) == (12 * S, "", "one. two.")
    assert context([], 0, 3 * S, 8 * S, 28 * S) == (0, "", "")


def seg(start: float, end: float, text: str) -> dict[str, Any]:
    return {"start": start, "end": end, "text": text}


def test_strip_prefix_keeps_only_the_new_text() -> None:
    prefix = "Open the window. Close the door"
    one = [seg(0.0, 9.0, "Open the window. Close the door. Turn left.")]
    assert strip_prefix(one, prefix, 6.0) == [seg(6.0, 9.0, "Turn left.")]
    split = [seg(0, 2, "Open the window."), seg(2, 4, "Close the door"), seg(6.5, 8, "Go.")]
    assert strip_prefix(split, prefix, 6.0) == [seg(6.5, 8, "Go.")]
    noise = [seg(0, 4, "Open the window. Close the door."), seg(6.5, 8, "//")]
    assert strip_prefix(noise, prefix, 6.0) == []  # decoder noise is no text
    assert strip_prefix([seg(0, 4, prefix)], prefix, 6.0) == []  # nothing new
    assert strip_prefix([seg(0, 4, "Open the win")], prefix, 6.0) is None  # cut short
    assert strip_prefix([seg(0, 4, "Something else. Go.")], prefix, 6.0) is None


class PrefixEngine(FakeEngine):
    """Echoes a forced prefix, then says ``new`` (or nothing). With ``ends_at_prefix`` the
    model closes its timestamped segment right after the prefix (the MIT licence read
    aloud: "... a copy of this software" and nothing after it) and says ``new`` only when
    it decodes without timestamps."""

    def __init__(self, new: str, speech: bool = True, ends_at_prefix: bool = False) -> None:
        super().__init__(speech_after_draft=speech)
        self.new = new
        self.ends_at_prefix = ends_at_prefix

    def transcribe(
        self,
        audio: Samples,
        options: dict[str, Any],
        on_segment: Callable[[dict[str, Any]], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription:
        if "prefix" not in options:
            return super().transcribe(audio, options, on_segment, cancelled, offset)
        self.calls.append(("transcribe", audio.size, dict(options)))
        timestamps = not options.get("without_timestamps")
        new = "" if self.ends_at_prefix and timestamps else self.new
        text = f"{options['prefix']} {new}".strip()
        end = offset + audio.size / S
        return Transcription.of_segments([seg(offset, end, text)], "en", audio.size / S)


def live_job(pieces: list[Piece]) -> Job:
    request = Transcribe("l", "pcm", PcmFormat("s16le", S, 1), {"live": True})
    job = Job(request, lambda _: None, None)
    job.pieces = pieces
    job.committed = pieces[-1].end if pieces else 0
    return job


AUDIO = np.concatenate([tone(3.0), silence(0.5), tone(2.0)])
PIECES = [Piece(0, int(3.4 * S), "First sentence.")]


def decode(
    engine: FakeEngine,
    job: Job,
    final_unpadded: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[Transcription, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    start, end = job.committed, AUDIO.size
    read = lambda a, b: AUDIO[a:b]  # noqa: E731
    work = (start, end, options or {}, sent.append, lambda: False, final_unpadded)
    result = decode_piece(engine, read, job, *work)
    return result, sent


def test_a_piece_is_decoded_with_the_piece_before_it_as_context() -> None:
    engine = PrefixEngine("Second one.")
    result, sent = decode(engine, live_job(PIECES))
    assert result.text == "Second one."
    assert sent == result.segments and sent[0]["start"] == 3.4  # not before the piece
    [(_, size, options)] = engine.calls
    assert size == AUDIO.size and options["prefix"] == "First sentence"
    assert "initial_prompt" not in options  # all earlier text is in the prefix


def test_a_decode_that_ends_at_the_prefix_is_retried_without_timestamps() -> None:
    # Decoded alone, the piece began "An associated documentation files" (a new
    # sentence, for "and associated"): the retry keeps the audio and text before it.
    engine = PrefixEngine("and associated files.", ends_at_prefix=True)
    result, sent = decode(engine, live_job(PIECES))
    assert result.text == "and associated files." and sent == result.segments
    assert [(size, o["prefix"], o.get("without_timestamps")) for _, size, o in engine.calls] == [
        (AUDIO.size, "First sentence", None),
        (AUDIO.size, "First sentence", True),
    ]
    assert sent[0]["start"] == 3.4


def test_no_new_text_after_the_prefix_but_speech_falls_back_to_the_piece_alone() -> None:
    engine = PrefixEngine("", speech=True)
    result, sent = decode(engine, live_job(PIECES))
    sizes = [size for _, size, _ in engine.calls]
    assert sizes == [AUDIO.size, AUDIO.size, AUDIO.size - int(3.4 * S)]
    fallback = engine.calls[2][2]
    assert "prefix" not in fallback and fallback["initial_prompt"] == "First sentence."
    assert result.text == f"{AUDIO.size - int(3.4 * S)} samples" and sent == result.segments


def test_no_new_text_and_no_speech_is_an_empty_piece() -> None:
    engine = PrefixEngine("", speech=False)
    result, sent = decode(engine, live_job(PIECES))
    assert result.text == "" and sent == [] and len(engine.calls) == 1


def test_only_the_final_piece_takes_the_unpadded_window() -> None:
    # While the user holds the key, a piece is decoded on the 30 s window, also when `end`
    # has arrived meanwhile (a window queued behind another job); the final piece, when
    # the fast path is allowed, on the unpadded one, with the same context and prefix.
    job = live_job(PIECES)
    job.received_at = 1.0  # `end` arrived
    during = PrefixEngine("Second one.")
    decode(during, job)
    assert during.calls[0][2]["fast_short_audio"] is False
    at_release = PrefixEngine("Second one.")
    result, _ = decode(at_release, job, final_unpadded=True)
    [(_, size, options)] = at_release.calls
    assert options["fast_short_audio"] is True and options["prefix"] == "First sentence"
    assert size == AUDIO.size and result.text == "Second one."


def test_a_final_piece_without_context_keeps_the_requests_own_path() -> None:
    engine = PrefixEngine("unused")
    decode(engine, live_job([]), final_unpadded=True)
    [(_, _, options)] = engine.calls
    assert "fast_short_audio" not in options  # the 30 s window, as a file request


def test_the_vocabulary_goes_with_every_decode_of_a_piece() -> None:
    # faster-whisper drops the hotwords when a prefix is forced; the engine then puts the
    # entries in the prompt (vocabulary.hotwords_in_prompt). Before, the pieces decoded
    # with context went without it, and later pieces never heard the vocabulary.
    engine = PrefixEngine("", speech=True)
    decode(engine, live_job(PIECES), options={"vocabulary": ["ComfyUI"]})
    assert [o.get("vocabulary") for _, _, o in engine.calls] == [["ComfyUI"]] * 3
    assert [bool(o.get("prefix")) for _, _, o in engine.calls] == [True, True, False]


def test_a_cancelled_piece_is_not_decoded_again() -> None:
    engine = PrefixEngine("", speech=True)
    job = live_job(PIECES)
    read = lambda a, b: AUDIO[a:b]  # noqa: E731
    cancelled = iter([False, True, True])
    result = decode_piece(
        engine, read, job, job.committed, AUDIO.size, {}, None, lambda: next(cancelled)
    )
    assert len(engine.calls) == 1 and result.text == ""


def test_the_first_piece_has_no_context() -> None:
    engine = PrefixEngine("unused")
    result, _ = decode(engine, live_job([]))
    [(_, size, options)] = engine.calls
    assert size == AUDIO.size and "prefix" not in options and "initial_prompt" not in options


def test_split_confirmed_needs_the_same_words_in_front() -> None:
    from whisperd.daemon.live import split_confirmed

    assert split_confirmed("The lazy dog.", "The lazy dog, he said. Go!") == (
        "The lazy dog,",
        "he said. Go!",
    )
    assert split_confirmed("Ask.", "Ask not what") == ("Ask", "not what")
    assert split_confirmed("The lazy nog.", "The lazy dog. Go.") is None
    assert split_confirmed("The lazy dog.", "The lazy") is None  # shorter: not confirmed
    assert split_confirmed("", "Anything") is None
    assert split_confirmed("follow-up call", "Follow up call now") == ("Follow up call", "now")


def test_a_confirmed_draft_is_committed_with_the_later_spelling() -> None:
    from whisperd.daemon import live
    from whisperd.daemon.commit import CommitDraft
    from whisperd.daemon.jobs import Draft

    sent: list[Any] = []
    job = live_job([])
    job.send = sent.append
    job.stream = object()  # type: ignore[assignment]  # only is_live looks at it

    def result(text: str, end: float) -> Transcription:
        return Transcription.of_segments([seg(0.0, end, text)], "en", end)

    live.new_draft(job, Draft(0, 2 * S, result("The lazy dog.", 2.0)))
    live.new_draft(job, Draft(0, 5 * S, result("The lazy dog, he said.", 5.0)))
    assert live.confirmation(job) == ("The lazy dog,", "he said.")
    live.commit_draft(job, CommitDraft(0, 2 * S))
    commits = [r for r in sent if r.TYPE == "commit"]
    assert [(c.text, c.start, c.end, c.final) for c in commits] == [("The lazy dog,", 0, 2, False)]
    assert job.committed == 2 * S and job.previous is None
    # The rest of the later draft is the draft of the next piece.
    assert job.draft is not None and (job.draft.start, job.draft.end) == (2 * S, 5 * S)
    assert job.draft.result.text == "he said."


def test_sentences_counts_the_sentence_ends_before_the_last_word() -> None:
    from whisperd.daemon.jobs import Draft
    from whisperd.daemon.live import ends_sentence, sentences
    from whisperd.engine.result import segment

    def draft(text: str) -> Draft:
        return Draft(0, 100, Transcription.of_segments([segment(0, 1, text)], "en", 1.0))

    assert sentences(draft("And so am I fellow Americans. Ask.")) == 2
    assert sentences(draft("The new policy applies to all employees.")) == 1
    assert sentences(draft('He said "stop." Then left')) == 2  # closing quotes allowed
    assert sentences(draft("Well... I think so.")) == 1  # a trailing-off "..." ends none
    assert sentences(draft("Why? Because! Yes.")) == 3
    assert sentences(None) == 0
    # An abbreviation's or an initial's full stop ends no sentence.
    assert sentences(draft("Dr. Smith will call you back.")) == 1
    assert sentences(draft("We met at 3 p.m. today.")) == 1
    assert sentences(draft("J. F. Kennedy spoke.")) == 1
    assert sentences(draft("It costs 3.5 euros. Pay now.")) == 2
    assert ends_sentence(draft("Ask not.")) and not ends_sentence(draft("Ask not..."))


def test_a_draft_is_compared_with_the_last_one_it_heard_enough_more_than() -> None:
    # daemon/live.py's new_draft: drafts of one piece ending at 2.0, 3.0 and 3.6 s; the
    # last heard 1.5 s more than the first only, so that is the one it may confirm.
    from whisperd.daemon.jobs import Draft
    from whisperd.daemon.live import confirmation, new_draft
    from whisperd.engine.result import segment

    def draft(end: float, text: str) -> Draft:
        result = Transcription.of_segments([segment(0, end, text)], "en", end)
        return Draft(0, int(end * S), result)

    job = live_job([])
    for end, text in (
        (2.0, "The lazy dog"),
        (3.0, "The lazy dog jumps"),
        (3.6, "The lazy dog jumps over"),
    ):
        new_draft(job, draft(end, text))
    assert job.previous is not None and job.previous.end == int(2.0 * S)
    assert [d.end for d in job.earlier] == [int(2.0 * S), int(3.0 * S)]
    assert confirmation(job) == ("The lazy dog", "jumps over")
    # A draft of another piece starts the list afresh.
    later = Draft(int(3.6 * S), int(6.0 * S), draft(2.4, "Later").result)
    new_draft(job, later)
    assert job.earlier == [] and job.previous is None


def test_agreed_words_leave_out_each_drafts_last_word() -> None:
    from whisperd.daemon.live import agreed_words

    # The earlier draft's last word was heard at the edge of its audio: never agreed.
    assert agreed_words("The lazy dog jum", "The lazy dog jumps over the") == 3
    assert agreed_words("The lazy dog", "The lazy dog jumps") == 2
    # Case and punctuation aside; the first difference ends the agreement.
    assert agreed_words("the lazy, nog and the", "The lazy dog and the cat") == 2
    # Nor the later draft's last word: it was at the edge of its audio too.
    assert agreed_words("The lazy dog jumps over", "The lazy dog") == 2
    assert agreed_words("", "The lazy dog") == 0
    assert agreed_words("Hello", "Hello there") == 0


def test_running_drafts_commit_the_words_they_agree_on_mid_sentence() -> None:
    from whisperd.daemon import live
    from whisperd.daemon.commit import CommitWords
    from whisperd.daemon.jobs import Draft, Piece
    from whisperd.engine.result import segment

    sent: list[Any] = []
    job = live_job([Piece(0, 2 * S, "Hello.")])
    job.send = sent.append
    job.committed = 2 * S

    def running(end: float, text: str) -> Draft:
        result = Transcription.of_segments([segment(2.0, end, text)], "en", end - 2.0)
        return Draft(2 * S, int(end * S), result, at_pause=False)

    live.new_draft(job, running(3.5, "The lazy dog jum"))
    assert live.agreement(job) == 0  # one draft agrees with nothing
    live.new_draft(job, running(5.0, "The lazy dog jumps over the"))
    # A running draft confirms no earlier draft whole; it agrees on words.
    assert job.previous is None and live.agreement(job) == 3
    live.commit_words(job, CommitWords(3))
    commits = [r for r in sent if r.TYPE == "commit"]
    # A piece in the middle of a sentence: where its words end in the audio is not known.
    assert [(c.text, c.start, c.end, c.final) for c in commits] == [("The lazy dog", 2, 2, False)]
    assert job.committed == 2 * S and job.pieces[-1] == Piece(2 * S, 2 * S, "The lazy dog")
    segments = [r.segment for r in sent if r.TYPE == "segment"]
    assert segments == [{"start": 2.0, "end": 2.0, "text": "The lazy dog"}]
    # The rest of the draft stays the draft of the same audio, after those words: the next
    # running draft, decoded after them, is compared with it.
    assert job.draft is not None and job.draft.result.text == "jumps over the"
    assert (job.draft.start, job.draft.end, job.draft.at_pause) == (2 * S, 5 * S, False)
    assert job.earlier == [] and job.previous is None
    live.new_draft(job, running(6.5, "jumps over the fence and"))
    assert live.agreement(job) == 2
    # The next decode is forced to begin with the committed words.
    from whisperd.daemon.pieces import context

    assert context(job.pieces, 2 * S, 7 * S, 10 * S, 28 * S) == (0, "Hello. The lazy dog", "")


def test_a_pause_draft_is_not_confirmed_by_a_running_draft() -> None:
    from whisperd.daemon import live
    from whisperd.daemon.jobs import Draft
    from whisperd.engine.result import segment

    job = live_job([])

    def draft(end: float, text: str, at_pause: bool) -> Draft:
        result = Transcription.of_segments([segment(0, end, text)], "en", end)
        return Draft(0, int(end * S), result, at_pause)

    live.new_draft(job, draft(2.5, "And so am I fellow Americans.", True))
    live.new_draft(job, draft(4.5, "And so am I fellow Americans. Ask not", False))
    assert job.previous is None and live.confirmation(job) is None
    # A later pause's draft may.
    live.new_draft(job, draft(6.0, "And so am I fellow Americans. Ask not what", True))
    assert job.previous is not None and job.previous.end == int(2.5 * S)


def test_words_committed_mid_sentence_always_lead_the_prefix() -> None:
    # A piece 5..40 s: the piece before (from 0) is beyond the 28 s window, but the words
    # committed mid-sentence at 5 s were spoken in this piece's audio: without them in the
    # prefix, the decode would give them again.
    pieces = [Piece(0, 5 * S, "one."), Piece(5 * S, 5 * S, "two words")]
    assert context(pieces, 5 * S, 40 * S, 10 * S, 28 * S) == (5 * S, "two words", "one.")


class ContextFailsEngine(PrefixEngine):
    """Says nothing after a prefix holding the earlier piece ("First ..."), and ``new``
    after one holding only the words committed mid-sentence."""

    def transcribe(
        self,
        audio: Samples,
        options: dict[str, Any],
        on_segment: Callable[[dict[str, Any]], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription:
        saved, prefix = self.new, str(options.get("prefix", ""))
        self.new = "" if prefix.startswith("First") else saved
        try:
            return super().transcribe(audio, options, on_segment, cancelled, offset)
        finally:
            self.new = saved


def test_a_piece_alone_leaves_out_the_words_committed_in_its_audio() -> None:
    job = live_job([*PIECES, Piece(int(3.4 * S), int(3.4 * S), "The lazy dog")])
    engine = ContextFailsEngine("jumps.", speech=True)
    result, sent = decode(engine, job)
    assert result.text == "jumps." and sent == result.segments
    prefixes = [o.get("prefix") for _, _, o in engine.calls]
    assert prefixes == ["First sentence. The lazy dog"] * 2 + ["The lazy dog"]
    alone = engine.calls[-1][2]
    assert alone["initial_prompt"] == "First sentence."  # not the words again
    assert engine.calls[-1][1] == AUDIO.size - int(3.4 * S)


def test_a_window_is_not_cut_inside_words_committed_mid_sentence() -> None:
    from tests.unit.daemon.fakes import s16le
    from whisperd.daemon import live
    from whisperd.daemon.pcmstore import CompactStream

    job = live_job([])
    job.stream = CompactStream(PcmFormat("s16le", S, 1))
    # Speech with its only silence at 10.5-10.8 s, inside the last 2 s searched.
    audio = np.concatenate([tone(10.5), silence(0.3), tone(1.2)])
    job.stream.feed(s16le(audio))
    assert 10.5 * S <= live.window_cut(job, 2.0) <= 10.8 * S
    # Words committed mid-sentence were heard in a draft ending at 11 s: after them.
    job.words_end = 11 * S
    assert live.window_cut(job, 2.0) >= 11 * S
