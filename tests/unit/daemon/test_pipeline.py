"""The worker side of a request (whisperd/daemon/pipeline.py) with a fake engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.daemon.fakes import FakeEngine, s16le, silence, tone, wav_bytes
from whisperd.audio import SAMPLE_RATE
from whisperd.config import DaemonConfig
from whisperd.daemon import pipeline
from whisperd.daemon.jobs import Draft, Job
from whisperd.daemon.pcmstore import CompactStream
from whisperd.daemon.streaming import StreamPolicy
from whisperd.engine import Transcription
from whisperd.protocol import ErrorCode, PcmFormat, ProtocolError, Reply, Transcribe

CONFIG = DaemonConfig()
POLICY = StreamPolicy.from_seconds(CONFIG.stream_window, CONFIG.draft_pause, SAMPLE_RATE)
PCM = PcmFormat("s16le", SAMPLE_RATE, 1)


def no_reply(_: Reply) -> None:
    raise AssertionError("the pipeline never replies itself")


def file_job(audio: bytes, client: object = None, **options: Any) -> Job:
    job = Job(Transcribe("f", "file", None, options), no_reply, client)
    job.chunks.append(audio)
    job.size = len(audio)
    job.received_at = 1.0
    return job


def stream_job(samples: np.ndarray[Any, Any]) -> Job:
    job = Job(Transcribe("s", "pcm", PCM, {"without_timestamps": True}), no_reply, None)
    job.stream = CompactStream(PCM)
    job.stream.feed(s16le(samples))
    job.received_at = 1.0
    return job


def run(
    job: Job, engine: FakeEngine, queued: list[Job] | None = None
) -> tuple[Transcription, dict[str, float], list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    result, timings = pipeline.run_job(job, engine, CONFIG, POLICY, queued or [job], sent.append)
    return result, timings, sent


def test_a_file_is_decoded_and_transcribed_whole() -> None:
    engine = FakeEngine()
    result, timings, sent = run(file_job(wav_bytes(tone(1.0))), engine)
    assert engine.calls == [("transcribe", SAMPLE_RATE, {})]
    assert result.text == f"{SAMPLE_RATE} samples"
    assert sent == result.segments
    assert set(timings) == {
        "queue",
        "audio_decode",
        "decode",
        "load",
        "streamed_decode",
        "draft_decode",
    }


def test_a_cancelled_job_is_not_decoded() -> None:
    job = file_job(wav_bytes(tone(1.0)))
    job.cancelled = True
    engine = FakeEngine()
    with pytest.raises(ProtocolError) as caught:
        run(job, engine)
    assert caught.value.code == ErrorCode.CANCELLED
    assert engine.calls == []


def test_bad_audio_is_a_bad_audio_error() -> None:
    with pytest.raises(ProtocolError) as caught:
        run(file_job(b"not audio at all" * 10), FakeEngine())
    assert caught.value.code == ErrorCode.BAD_AUDIO


def test_audio_longer_than_the_limit() -> None:
    config = DaemonConfig(max_audio_seconds=0.5)
    job = file_job(wav_bytes(tone(1.0)))
    with pytest.raises(ProtocolError) as caught:
        pipeline.run_job(job, FakeEngine(), config, POLICY, [job], lambda _: None)
    assert caught.value.code == ErrorCode.AUDIO_TOO_LARGE


def test_a_stream_after_windows_transcribes_only_its_tail_and_merges() -> None:
    job = stream_job(tone(3.0))
    job.committed = 2 * SAMPLE_RATE
    job.segments = [{"start": 0.0, "end": 2.0, "text": "earlier"}]
    engine = FakeEngine()
    result, _, _ = run(job, engine)
    name, size, options = engine.calls[0]
    assert (name, size) == ("transcribe", SAMPLE_RATE)
    assert options["initial_prompt"] == "earlier"  # earlier text conditions the model
    assert options["fast_short_audio"] is CONFIG.fast_short_audio
    assert result.text == f"earlier {SAMPLE_RATE} samples"
    assert [s["start"] for s in result.segments] == [0.0, 2.0]
    assert result.duration == 3.0


def draft_of(job: Job, end: int) -> Draft:
    return Draft(0, end, Transcription("the draft", [{"start": 0, "end": 1, "text": "d"}], "en", 1))


def test_a_draft_is_the_answer_when_nothing_follows_it() -> None:
    job = stream_job(np.concatenate([tone(1.0), silence(0.5)]))
    job.draft = draft_of(job, int(1.5 * SAMPLE_RATE))
    engine = FakeEngine()
    result, _, sent = run(job, engine)
    assert result.text == "the draft" and job.draft_used
    assert engine.calls == [] and engine.vad_calls == 0  # nothing after it to check
    assert sent == result.segments


def test_a_quiet_tail_after_a_draft_is_checked_by_the_vad() -> None:
    audio = np.concatenate([tone(1.0), silence(0.5)])
    for speech, used in ((False, True), (True, False)):
        job = stream_job(audio)
        job.draft = draft_of(job, int(1.2 * SAMPLE_RATE))
        engine = FakeEngine(speech_after_draft=speech)
        result, _, _ = run(job, engine)
        assert engine.vad_calls == 1
        assert job.draft_used is used
        assert (result.text == "the draft") is used


def test_speech_after_a_draft_makes_it_unusable() -> None:
    job = stream_job(np.concatenate([tone(1.0), silence(0.5), tone(0.5)]))
    job.draft = draft_of(job, int(1.3 * SAMPLE_RATE))
    engine = FakeEngine()
    result, _, _ = run(job, engine)
    assert not job.draft_used and engine.vad_calls == 0
    assert engine.calls[0][:2] == ("transcribe", 2 * SAMPLE_RATE)


def test_short_files_of_one_client_are_packed_together() -> None:
    me, other_client = object(), object()
    first = file_job(wav_bytes(tone(1.0)), me)
    second = file_job(wav_bytes(tone(2.0)), me)
    stranger = file_job(wav_bytes(tone(1.0)), other_client)
    different = file_job(wav_bytes(tone(1.0)), me, beam_size=1)
    engine = FakeEngine()
    result, _, sent = run(first, engine, [first, second, stranger, different])
    assert engine.calls == [("transcribe_many", 2, {})]
    assert result.text == f"{SAMPLE_RATE} packed" and first.packed_with == 2
    assert second.packed is not None and second.packed.text == f"{2 * SAMPLE_RATE} packed"
    assert stranger.packed is None and different.packed is None
    # The peer's own turn answers from the packed result without the engine.
    peer_result, timings, _ = run(second, engine, [second])
    assert peer_result is second.packed and len(engine.calls) == 1
    assert timings["decode"] == 0.0


def test_no_packing_when_off_or_for_word_timestamps() -> None:
    for config, options in (
        (DaemonConfig(pack_files=False), {}),
        (CONFIG, {"word_timestamps": True}),
    ):
        first = file_job(wav_bytes(tone(1.0)), None, **options)
        second = file_job(wav_bytes(tone(1.0)), None, **options)
        engine = FakeEngine()
        pipeline.run_job(first, engine, config, POLICY, [first, second], lambda _: None)
        assert [c[0] for c in engine.calls] == ["transcribe"]


def test_window_piece_ends_at_the_quietest_moment() -> None:
    audio = np.concatenate([tone(11.0), silence(0.06), tone(0.9)])
    job = stream_job(audio)
    piece, cut = pipeline.window_piece(job, 2.0)
    assert 11.0 * SAMPLE_RATE <= cut <= 11.06 * SAMPLE_RATE
    assert piece.size == cut


def test_a_running_draft_is_the_answer_only_when_a_pause_followed_the_last_word() -> None:
    # A running draft (live, made while the speaker talked) that heard every word is the
    # answer only when it ended a whole pause after the last word; one that ended 0.1 s
    # after it may have cut the word's end: the release decodes the audio again.
    for end, used in ((1.1, False), (1.3, True)):
        job = stream_job(np.concatenate([tone(1.0), silence(0.5)]))
        draft = draft_of(job, int(end * SAMPLE_RATE))
        job.draft = Draft(draft.start, draft.end, draft.result, at_pause=False)
        result, _, _ = run(job, FakeEngine())
        assert job.draft_used is used and (result.text == "the draft") is used
