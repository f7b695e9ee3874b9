"""Live streams through the connection and the scheduler (socketpair, fake engine): the
commit events of docs/protocol.md, "Live dictation"."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from tests.unit.daemon.fakes import s16le, silence, tone
from tests.unit.daemon.test_connection import PCM, Served, run, serving
from whisperd.audio import SAMPLE_RATE
from whisperd.config import DaemonConfig
from whisperd.daemon import pipeline
from whisperd.daemon.jobs import Job
from whisperd.protocol import Transcribe


async def stream_live(s: Served, rid: str, audio: np.ndarray[Any, Any], pace: float) -> None:
    request = {"type": "transcribe", "id": rid, "format": "pcm", **PCM}
    request["options"] = {"live": True, "without_timestamps": True}
    assert await s.client.ask(request) == {"type": "accepted", "id": rid}
    data = s16le(audio)
    step = SAMPLE_RATE // 10 * 2  # 0.1 s
    for start in range(0, len(data), step):
        part = data[start : start + step]
        await s.client.send({"type": "audio", "id": rid, "size": len(part)}, part)
        await asyncio.sleep(pace)


async def collect(s: Served, rid: str) -> list[dict[str, Any]]:
    """Commit events and segments, up to the result (or an error)."""
    replies = []
    while True:
        reply = await s.client.recv()
        assert reply is not None and reply["id"] == rid, reply
        replies.append(reply)
        if reply["type"] not in ("segment", "commit"):
            return replies


async def idle(s: Served) -> None:
    while s.scheduler.busy:
        await asyncio.sleep(0.01)


def check_pieces(replies: list[dict[str, Any]], length: int) -> list[dict[str, Any]]:
    """The commit events: numbered from 0, only the last final, tiling the stream, and
    the result's text is their texts joined."""
    commits = [r for r in replies if r["type"] == "commit"]
    assert [c["seq"] for c in commits] == list(range(len(commits)))
    assert [c["final"] for c in commits] == [False] * (len(commits) - 1) + [True]
    assert commits[0]["start"] == 0.0 and commits[-1]["end"] == length / SAMPLE_RATE
    for before, after in zip(commits, commits[1:], strict=False):
        assert before["end"] == after["start"]
    result = replies[-1]
    assert result["type"] == "result", result
    assert result["text"] == " ".join(c["text"] for c in commits if c["text"])
    # Segment events as before: each of the result's segments, once, in order.
    sent = [{k: r[k] for k in ("start", "end", "text")} for r in replies if r["type"] == "segment"]
    assert sent == result["segments"]
    return commits


@pytest.mark.parametrize(("spoken", "fast"), [(2.5, True), (1.0, True), (2.5, False)])
def test_pauses_commit_pieces_before_the_release(spoken: float, fast: bool) -> None:
    async def test() -> None:
        async with serving(DaemonConfig(draft_pause=0.25, fast_short_audio=fast)) as s:
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            # A pause of 2 s: nothing can confirm the draft soon, so it is committed.
            first = np.concatenate([tone(1.0), silence(2.5)])
            await stream_live(s, "live", first, 0.02)
            await idle(s)
            # The first sentence is final before the user lets go: its event is here.
            segment = await s.client.recv()  # the draft's segments come with its commit
            assert segment is not None and segment["type"] == "segment", segment
            early = await s.client.recv()
            assert early is not None and early["type"] == "commit", early
            assert early["seq"] == 0 and early["final"] is False and early["start"] == 0.0
            # A short pause whose draft does not end a sentence (the fake engine's text has
            # no full stop): it waits to be confirmed by the next pause. The release comes
            # first: nothing can confirm it any more, so a draft of 2.5 s of speech is
            # committed as it is, and only the audio after it is decoded for the final
            # piece; a shorter one (where the model errs most) is decoded again with it.
            rest = np.concatenate([tone(spoken), silence(0.6), tone(0.5)])
            await stream_live_more(s, "live", rest)
            await s.client.send({"type": "end", "id": "live"})
            replies = [segment, early, *await collect(s, "live")]
            commits = check_pieces(replies, first.size + rest.size)
            assert commits[0]["end"] < 2.0 and commits[0]["text"]
            if spoken < 2.5:
                assert len(commits) == 2
            else:
                assert len(commits) == 3
                pending, final = commits[1], commits[2]
                assert pending["text"] and not pending["final"]
                pause = 3.5 + spoken  # the draft made in the short pause
                assert pause <= pending["end"] < pause + 0.6
                assert final["final"] and final["start"] == pending["end"]
            # Pieces are decoded with timestamps (the accuracy fix); only the retry of a
            # decode with a forced prefix goes without them. The fast path (the unpadded
            # window) only for the final piece, decoded after the release.
            options = [o for name, _, o in s.engine.calls if name == "transcribe"]
            assert all("live" not in o for o in options)
            assert all("without_timestamps" not in o or o["prefix"] for o in options)
            assert any("prefix" in o for o in options)  # later pieces tried with context
            # The unpadded window: only the final piece's decodes with context, and only
            # as [daemon] fast_short_audio allows; a piece decoded alone keeps its path.
            unpadded = [bool(o.get("fast_short_audio")) for o in options if o.get("prefix")]
            assert unpadded == sorted(unpadded) and unpadded[-1] is fast, unpadded
            assert not any(o.get("fast_short_audio") for o in options if not o.get("prefix"))

    run(test)


async def stream_live_more(s: Served, rid: str, audio: np.ndarray[Any, Any]) -> None:
    data = s16le(audio)
    step = SAMPLE_RATE // 10 * 2
    for start in range(0, len(data), step):
        part = data[start : start + step]
        await s.client.send({"type": "audio", "id": rid, "size": len(part)}, part)
        await asyncio.sleep(0.02)


def test_a_draft_that_ends_a_sentence_is_committed_in_its_own_pause() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(draft_pause=0.25)) as s:
            s.engine.suffix = "."  # every piece the model hears ends a sentence
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            # A short pause (0.6 s), then the user speaks on: the first sentence's draft
            # (4.5 s: long enough to trust its full stop, and for a first piece) is
            # final at once, not at the next pause or the release.
            await stream_live(s, "s", np.concatenate([tone(4.5), silence(0.6)]), 0.01)
            await idle(s)
            segment = await s.client.recv()
            early = await s.client.recv()
            assert segment is not None and segment["type"] == "segment", segment
            assert early is not None and early["type"] == "commit", early
            assert early["seq"] == 0 and not early["final"] and 4.75 <= early["end"] < 5.1
            more = np.concatenate([tone(1.0), silence(0.05)])
            await stream_live_more(s, "s", more)
            await s.client.send({"type": "end", "id": "s"})
            replies = [segment, early, *await collect(s, "s")]
            commits = check_pieces(replies, int(5.1 * SAMPLE_RATE) + more.size)
            assert len(commits) == 2 and commits[1]["start"] == early["end"]

    run(test)


def test_a_short_first_draft_of_two_sentences_waits() -> None:
    # The daemon's own state (daemon/live.py): no text committed yet, a draft of 2.5 s
    # whose text holds two sentences ("... Americans. Ask.") is not final in its pause;
    # the same draft holding one sentence is.
    async def first_commit(suffix: str) -> dict[str, Any] | None:
        async with serving(DaemonConfig(draft_pause=0.25)) as s:
            s.engine.suffix = suffix
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            await stream_live(s, "s", np.concatenate([tone(2.5), silence(0.6)]), 0.01)
            await idle(s)
            try:
                return await asyncio.wait_for(s.client.recv(), 0.5)
            except TimeoutError:
                return None

    async def test() -> None:
        one = await first_commit(".")
        assert one is not None and one["type"] == "segment", one
        assert await first_commit(". Ask.") is None

    run(test)


def test_a_long_pause_free_stream_commits_its_windows() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(stream_window=3.0, draft_pause=0.0)) as s:
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            audio = tone(11.0)
            await stream_live(s, "w", audio, 0.005)
            await s.client.send({"type": "end", "id": "w"})
            replies = await collect(s, "w")
            commits = check_pieces(replies, audio.size)
            assert len(commits) >= 2  # windows while streaming, then the final tail

    run(test)


def test_release_right_after_a_pause_makes_the_draft_the_final_piece() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(draft_pause=0.25)) as s:
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            audio = np.concatenate([tone(1.0), silence(0.3)])
            await stream_live(s, "p", audio, 0.0)
            await s.client.send({"type": "end", "id": "p"})
            replies = await collect(s, "p")
            commits = check_pieces(replies, audio.size)
            assert len(commits) == 1 and commits[0]["text"]

    run(test)


def test_live_needs_a_pcm_stream() -> None:
    async def test() -> None:
        async with serving() as s:
            await s.client.hello()
            request = {"type": "transcribe", "id": 1, "format": "file", "options": {"live": True}}
            reply = await s.client.ask(request)
            assert reply["type"] == "error" and reply["code"] == "bad_field", reply

    run(test)


def test_a_stream_without_live_sends_no_commit_events() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(draft_pause=0.25)) as s:
            await s.client.hello()
            await s.client.ask({"type": "load", "id": "l"})
            rid = "plain"
            await s.client.ask({"type": "transcribe", "id": rid, "format": "pcm", **PCM})
            data = s16le(np.concatenate([tone(1.0), silence(0.6), tone(1.0)]))
            await s.client.send({"type": "audio", "id": rid, "size": len(data)}, data)
            await s.client.send({"type": "end", "id": rid})
            replies = await s.client.until_result(rid)
            assert {r["type"] for r in replies} <= {"segment", "result"}

    run(test)


def test_live_options_decode_pieces_like_a_file_request() -> None:
    request = Transcribe("s", "pcm", None, {"live": True, "without_timestamps": True})
    options = pipeline.window_options(Job(request, lambda _: None, None), DaemonConfig())
    assert options == {}


async def first_sentence_then_talk(s: Served) -> tuple[int, list[dict[str, Any]]]:
    """A first sentence, final after a long pause (running drafts need text committed
    before them), then 2.5 s of speech without a pause, released while the speaker still
    talks: the stream's length, and how many decodes came before the release."""
    s.engine.suffix = " one two three"  # five words a decode
    await s.client.hello()
    await s.client.ask({"type": "load", "id": "l"})
    first = np.concatenate([tone(1.0), silence(2.5)])
    await stream_live(s, "r", first, 0.02)
    await idle(s)
    talk = tone(2.5)
    await stream_live_more(s, "r", talk)
    await idle(s)
    drafts = [o for name, _, o in s.engine.calls if name == "transcribe"]
    await s.client.send({"type": "end", "id": "r"})
    return first.size + talk.size, drafts


def test_at_the_release_a_running_drafts_words_but_its_last_two_are_committed_first() -> None:
    async def test() -> None:
        async with serving(DaemonConfig(draft_pause=0.25)) as s:
            length, drafts = await first_sentence_then_talk(s)
            commits = check_pieces(await collect(s, "r"), length)
            assert len(drafts) >= 2  # the first piece's draft, then a running draft
            assert len(commits) == 3, commits
            mid, final = commits[1], commits[2]
            # The running draft's words but the last two, before the tail is decoded, as
            # a piece whose end in the audio is not known.
            assert mid["start"] == mid["end"] == commits[0]["end"] and not mid["final"]
            assert mid["text"].endswith("samples one") and len(mid["text"].split()) == 3
            assert final["final"] and final["start"] == mid["end"]
            # The tail's decode is forced to begin with them.
            tail = [o for name, _, o in s.engine.calls if name == "transcribe"][len(drafts) :]
            assert tail and str(tail[0]["prefix"]).endswith(mid["text"]), tail

    run(test)


def test_no_running_drafts_where_a_decode_takes_over_the_budget() -> None:
    # commit.RUNNING_BUDGET: the same dictation as above, on a machine whose decodes take
    # 0.35 s: no draft while the speaker talks, no words final mid-sentence.
    async def test() -> None:
        async with serving(DaemonConfig(draft_pause=0.25)) as s:
            fast = s.engine.transcribe

            def slow(*args: Any, **kwargs: Any) -> Any:
                time.sleep(0.35)
                return fast(*args, **kwargs)

            s.engine.transcribe = slow  # type: ignore[method-assign]
            length, drafts = await first_sentence_then_talk(s)
            assert len(drafts) == 1  # the first piece's draft only
            commits = check_pieces(await collect(s, "r"), length)
            assert [c["start"] == c["end"] for c in commits] == [False, False]

    run(test)
