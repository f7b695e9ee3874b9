"""whisperctl reading audio from standard input: `transcribe -` (a whole file) and
`transcribe --live -` (PCM or a WAV stream, printed piece by piece as it becomes final)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np

from tests.conftest import JFK_TEXT, RunningDaemon, espeak, shared_audio, words
from tests.integration.support import SENTENCES, wer

RATE = 16000


def whisperctl(daemon: RunningDaemon, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "whisperd.cli", "--socket", str(daemon.socket_path), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def utterance(folder: Path) -> np.ndarray:
    """Three sentences with quiet between them: 2.5 s after the first (a pause that long
    makes it final at once, docs/protocol.md), 1 s after the others."""
    rng = np.random.default_rng(3)
    parts: list[np.ndarray] = []
    for index, pause in zip((0, 1, 2), (2.5, 1.0, 1.0), strict=True):
        with wave.open(
            str(espeak(SENTENCES[index][0], folder / f"c{index}.wav", speed=150))
        ) as wav:
            parts.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16))
        parts.append(rng.normal(0, 30, int(pause * RATE)).astype(np.int16))
    return np.concatenate(parts)


def feed(process: subprocess.Popen[bytes], data: bytes, pace: float) -> list[float]:
    """Write ``data`` to stdin, 20 ms of audio at a time at ``pace`` (1 = real time), then
    close it. Returns [the time the last byte was written]."""
    done: list[float] = []

    def run() -> None:
        assert process.stdin is not None
        block = RATE // 50 * 2
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(data), block)):
            time.sleep(max(0.0, start + index * 0.02 * pace - time.monotonic()))
            process.stdin.write(data[offset : offset + block])
            process.stdin.flush()
        done.append(time.monotonic())
        process.stdin.close()

    threading.Thread(target=run, daemon=True).start()
    return done


def read_lines(process: subprocess.Popen[bytes]) -> list[tuple[float, str]]:
    assert process.stdout is not None
    return [(time.monotonic(), line.decode()) for line in iter(process.stdout.readline, b"")]


def test_live_pcm_at_real_time_prints_pieces_before_eof(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    audio = utterance(tmp_path)
    process = whisperctl(daemon, "transcribe", "--live", "--json", "-")
    eof = feed(process, audio.astype("<i2").tobytes(), pace=1.0)
    lines = read_lines(process)
    assert process.wait(120) == 0, process.stderr.read() if process.stderr else ""
    events = [(t, json.loads(line)) for t, line in lines]
    commits = [(t, e) for t, e in events if e["type"] == "commit"]
    result = events[-1][1]
    assert result["type"] == "result", events
    early = [e for t, e in commits if t < eof[0]]
    assert early and early[0]["text"], "no piece was printed while the audio still came"
    assert [e["seq"] for _, e in commits] == list(range(len(commits)))
    assert commits[-1][1]["final"] and not any(e["final"] for _, e in commits[:-1])
    assert " ".join(e["text"] for _, e in commits if e["text"]) == result["text"]


def test_live_plain_output_is_one_piece_a_line(daemon: RunningDaemon, tmp_path: Path) -> None:
    audio = utterance(tmp_path)
    process = whisperctl(daemon, "transcribe", "--live", "-")
    feed(process, audio.astype("<i2").tobytes(), pace=1.0)
    lines = [line.rstrip("\n") for _, line in read_lines(process)]
    assert process.wait(120) == 0
    assert all(line.strip() for line in lines)
    whole = whisperctl(daemon, "transcribe", "-")
    out, _ = whole.communicate(as_wav(audio, tmp_path), timeout=120)
    # Same audio, two paths of the same daemon, bounded against the spoken sentences.
    reference = " ".join(text for text, _ in SENTENCES[:3])
    assert wer(reference, " ".join(lines)) <= wer(reference, out.decode()) + 0.1, (lines, out)


def as_wav(audio: np.ndarray, folder: Path) -> bytes:
    path = folder / "whole.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(audio.astype("<i2").tobytes())
    return path.read_bytes()


def test_live_reads_a_wav_stream_at_its_own_rate(daemon: RunningDaemon, tmp_path: Path) -> None:
    stereo_44k = tmp_path / "jfk44.wav"
    subprocess.run(
        [
            "sox",
            str(shared_audio("jfk.flac")),
            "-r",
            "44100",
            "-c",
            "2",
            "-b",
            "16",
            str(stereo_44k),
        ],
        check=True,
    )
    process = whisperctl(daemon, "transcribe", "--live", "-")
    out, err = process.communicate(stereo_44k.read_bytes(), timeout=120)
    assert process.returncode == 0, err
    assert words(out.decode()) == words(JFK_TEXT)


def test_whole_file_from_stdin(daemon: RunningDaemon) -> None:
    process = whisperctl(daemon, "transcribe", "-")
    out, err = process.communicate(shared_audio("jfk.flac").read_bytes(), timeout=120)
    assert process.returncode == 0, err
    assert words(out.decode()) == words(JFK_TEXT)


def test_stdin_with_other_files_is_a_usage_error(daemon: RunningDaemon) -> None:
    process = whisperctl(daemon, "transcribe", "--live", "a.wav")
    _, err = process.communicate(b"", timeout=60)
    assert process.returncode == 2 and b"standard input" in err


def test_live_path_imports_neither_numpy_nor_faster_whisper(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    pcm = tmp_path / "quiet.raw"
    pcm.write_bytes(b"\x00\x00" * RATE)
    probe = (
        "import sys\n"
        "from whisperd.cli import main\n"
        f"code = main(['--socket', {str(daemon.socket_path)!r}, 'transcribe', '--live', '-'])\n"
        "names = ('numpy', 'faster_whisper', 'ctranslate2', 'av')\n"
        "print('HEAVY', [m for m in names if m in sys.modules])\n"
        "sys.exit(code)\n"
    )
    with pcm.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-c", probe], stdin=stdin, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
