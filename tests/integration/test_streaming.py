"""Dictation-style streams: PCM sent while it is recorded, long ones transcribed in windows."""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningDaemon, espeak, start_daemon, stop_daemon, words
from tests.integration.support import wer
from whisperd.client import Client

SENTENCES = [
    "The weather today is sunny with a light breeze from the west.",
    "Please remember to buy milk, bread and fresh vegetables on the way home.",
    "Our meeting has been moved to Thursday afternoon at three o'clock.",
    "The library closes early on Sundays, so plan your visit in the morning.",
    "She opened the window and listened to the birds singing in the garden.",
    "We should finish the report before the end of the week.",
]


def pcm_of(path: Path) -> tuple[bytes, int, int]:
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels()


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """About 30 s of speech: several sentences with short pauses."""
    folder = tmp_path_factory.mktemp("speech")
    parts = [espeak(s, folder / f"s{i}.wav", speed=150) for i, s in enumerate(SENTENCES)]
    joined = folder / "long.wav"
    subprocess.run(["sox", *map(str, parts), str(joined)], check=True)
    return joined, " ".join(SENTENCES)


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(
        tmp_path_factory.mktemp("windowed"),
        "--idle-timeout",
        "600",
        config="[daemon]\nstream_window = 5\n",
    )
    yield running
    stop_daemon(running)


def stream(
    daemon: RunningDaemon,
    pcm: bytes,
    rate: int,
    channels: int,
    chunk: int,
    options: dict | None = None,
) -> dict:
    with Client.connect(str(daemon.socket_path), timeout=120, autostart=False) as client:
        segments: list[dict] = []
        audio = client.start_stream(rate, channels, "s16le", options)
        for start in range(0, len(pcm), chunk):
            audio.send(pcm[start : start + chunk])
        result = audio.finish(segments.append)
        result["streamed_segments"] = segments
        return result


@pytest.mark.slow
def test_long_stream_is_transcribed_in_windows_as_well_as_in_one_piece(
    windowed: RunningDaemon, daemon: RunningDaemon, long_speech: tuple[Path, str]
) -> None:
    path, reference = long_speech
    pcm, rate, channels = pcm_of(path)
    assert len(pcm) / (2 * rate) > 20
    in_windows = stream(windowed, pcm, rate, channels, chunk=3200)
    whole = Client.connect(str(daemon.socket_path), autostart=False).transcribe_file(path)
    assert in_windows["timings"]["streamed_decode"] > 0, "no window ran while streaming"
    starts = [s["start"] for s in in_windows["segments"]]
    assert starts == sorted(starts)
    assert in_windows["segments"][-1]["end"] > 20
    assert len(in_windows["streamed_segments"]) == len(in_windows["segments"])
    wer_windows = wer(reference, in_windows["text"])
    wer_whole = wer(reference, whole["text"])
    assert wer_windows <= max(0.1, wer_whole + 0.05), (in_windows["text"], whole["text"])


def test_chunks_split_inside_sample_frames(daemon: RunningDaemon, tmp_path: Path) -> None:
    """Clients may cut the byte stream anywhere: odd sizes, stereo, 44.1 kHz."""
    mono = espeak("Testing one two three, can you hear me?", tmp_path / "m.wav")
    stereo = tmp_path / "stereo.wav"
    subprocess.run(["sox", str(mono), "-r", "44100", "-c", "2", str(stereo)], check=True)
    pcm, rate, channels = pcm_of(stereo)
    assert (rate, channels) == (44100, 2)
    result = stream(daemon, pcm, rate, channels, chunk=1001)
    assert "hear" in words(result["text"])


def test_stream_ending_inside_a_frame_is_bad_audio(daemon: RunningDaemon) -> None:
    from whisperd.client import ClientError

    with Client.connect(str(daemon.socket_path), autostart=False) as client:
        audio = client.start_stream(16000, 2, "s16le")
        audio.send(b"\x00" * 4003)
        with pytest.raises(ClientError) as caught:
            audio.finish()
        assert caught.value.code == "bad_audio"
        client.ping()


def test_short_dictation_takes_the_unpadded_path_and_files_do_not(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    speech = espeak("Please send the invoice to the finance team today.", tmp_path / "d.wav")
    pcm, rate, channels = pcm_of(speech)
    dictation = {"without_timestamps": True}  # what whisperd-keys asks for
    streamed = stream(daemon, pcm, rate, channels, chunk=3200, options=dictation)
    assert streamed["decoder"] == "unpadded"
    assert {"please", "send", "invoice", "today"} <= set(words(streamed["text"]))
    with Client.connect(str(daemon.socket_path), autostart=False) as client:
        as_file = client.transcribe_file(speech)
        assert as_file["decoder"] == "standard"
        forced = client.transcribe_file(speech, {"fast_short_audio": True})
        assert forced["decoder"] == "unpadded"
        slow = client.start_stream(
            rate, channels, "s16le", {**dictation, "fast_short_audio": False}
        )
        slow.send(pcm)
        assert slow.finish()["decoder"] == "standard"


def test_streams_with_timestamps_keep_faster_whispers_path(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    """The unpadded window cost 5 more word errors in 349 when timestamps were decoded
    (bench, section 6), so by default only timestamp-free dictation takes it."""
    speech = espeak("Please send the invoice to the finance team today.", tmp_path / "d.wav")
    pcm, rate, channels = pcm_of(speech)
    assert stream(daemon, pcm, rate, channels, chunk=3200)["decoder"] == "standard"
    forced = stream(daemon, pcm, rate, channels, chunk=3200, options={"fast_short_audio": True})
    assert forced["decoder"] == "unpadded"
