"""whisperd/decoding: files decoded in a confined process; crashes, bombs and playlists
end in a typed error for that file alone (issue 11, items 1, 3 and 4)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from tests import audio_fuzz
from tests.conftest import ROOT, shared_audio
from whisperd.audio import SAMPLE_RATE, AudioTooLarge, BadAudio, decode_file
from whisperd.decoding import sandbox

SIX_HOURS = 6 * 3600


@pytest.fixture(scope="module")
def six_hour_flac() -> bytes:
    """Six hours of 8 kHz silence as FLAC: 45 KB that decode to 1.4 GB of float32."""
    return audio_fuzz.silent_flac(SIX_HOURS)


# --- item 1: a crash in FFmpeg --------------------------------------------------------------


def test_mp3_frame_switching_stereo_to_mono_leaves_the_caller_alive(tmp_path: Path) -> None:
    """This file killed the daemon with SIGSEGV (FFmpeg's resampler fed a mono frame in a
    stereo stream). Decoded in a fresh interpreter, so a crash fails the test, not pytest."""
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(audio_fuzz.mp3_frame_layout_switch(shared_audio("hotwords.mp3")))
    script = (
        "import sys\n"
        "from whisperd.audio import BadAudio, decode_file\n"
        "try:\n"
        "    out = decode_file(open(sys.argv[1], 'rb').read())\n"
        "    print('samples', out.size)\n"
        "except BadAudio as exc:\n"
        "    print('bad_audio', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(corrupt)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    kind, _, rest = done.stdout.partition(" ")
    assert kind in ("samples", "bad_audio"), done.stdout
    if kind == "samples":  # every frame decodes: the mono one is mixed like the others
        assert abs(int(rest) - 4 * SAMPLE_RATE) < SAMPLE_RATE // 10


def test_files_decode_exactly_as_faster_whisper_decodes_them() -> None:
    """The decoder process changes where decoding runs, not its result."""
    for name in ("jfk.flac", "hotwords.mp3", "stereo_diarization.wav"):
        data = shared_audio(name).read_bytes()
        expected = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
        np.testing.assert_array_equal(decode_file(data), expected)


@pytest.mark.parametrize("name", sorted(audio_fuzz.SEEDS))
def test_every_accepted_format_decodes(name: str) -> None:
    out = decode_file(audio_fuzz.encode(name, seconds=2.0))
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - 2 * SAMPLE_RATE) < SAMPLE_RATE // 20  # codec padding at most


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wav_adpcm_ms", "the audio codec 'adpcm_ms' is not accepted"),
        ("wav_mp2", "the audio codec 'mp2' is not accepted"),
        ("au", "not an accepted format"),
        ("caf", "not an accepted format"),
    ],
)
def test_formats_and_codecs_outside_the_whitelists_are_refused(name: str, message: str) -> None:
    with pytest.raises(BadAudio, match=message):
        decode_file(audio_fuzz.encode(name, seconds=0.5))


# --- item 3: decompression bombs ------------------------------------------------------------


def test_wav_claiming_1_hz_is_refused_from_its_header() -> None:
    """20 KB claiming 1 Hz: 10,000 s once resampled to 16 kHz (it took 3.6 GB and 40 s)."""
    with pytest.raises(BadAudio, match="sample rate 1 Hz is outside 8000..192000 Hz"):
        decode_file(audio_fuzz.wav_claiming(1, 20_000))


def test_wav_with_a_streaming_header_still_decodes() -> None:
    """Recorders writing to a pipe put 0xFFFFFFFF in the data size: no claimed length."""
    data = bytearray(audio_fuzz.encode("wav", seconds=2.0))
    position = data.index(b"data") + 4
    data[position : position + 4] = b"\xff\xff\xff\xff"
    assert abs(decode_file(bytes(data)).size - 2 * SAMPLE_RATE) < 160


def test_six_hour_flac_is_refused_from_its_header(six_hour_flac: bytes) -> None:
    with pytest.raises(AudioTooLarge, match="its header says 21600 s") as caught:
        decode_file(six_hour_flac)
    assert caught.value.code == "audio_too_large"
    assert "max_audio_seconds (14400 s)" in str(caught.value)


@pytest.mark.parametrize("claimed", [10 * SAMPLE_RATE, 0], ids=["claims_10s", "claims_unknown"])
def test_flac_whose_header_lies_is_stopped_while_decoding(
    six_hour_flac: bytes, claimed: int
) -> None:
    liar = audio_fuzz.flac_claiming_samples(six_hour_flac, claimed)
    with pytest.raises(AudioTooLarge, match="decoding passed 60 s"):
        decode_file(liar, max_seconds=60)


def test_header_under_the_limit_and_output_under_the_limit_decodes() -> None:
    data = audio_fuzz.encode("flac", seconds=2.0)
    assert decode_file(data, max_seconds=2.5).size == 2 * SAMPLE_RATE
    with pytest.raises(AudioTooLarge):
        decode_file(data, max_seconds=1.5)


# --- item 4: demuxers that open other files -------------------------------------------------


@pytest.fixture
def private_flac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real FLAC named private.flac in the working directory, as under $HOME."""
    path = tmp_path / "private.flac"
    path.write_bytes(audio_fuzz.encode("flac", seconds=1.0))
    monkeypatch.chdir(tmp_path)
    return path


PLAYLISTS = {
    "ffconcat": b"ffconcat version 1.0\nfile private.flac\n",
    "ffconcat_50_times": b"ffconcat version 1.0\n" + b"file private.flac\n" * 50,
    "hls": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nprivate.flac\n#EXT-X-ENDLIST\n",
    "m3u": b"#EXTM3U\n#EXTINF:1,x\nprivate.flac\n",
}


@pytest.mark.parametrize("name", sorted(PLAYLISTS))
def test_playlists_naming_a_local_file_are_refused(private_flac: Path, name: str) -> None:
    with pytest.raises(BadAudio, match="not an accepted format"):
        decode_file(PLAYLISTS[name])


@pytest.fixture
def watched_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, list[str]]]:
    """private.flac as a FIFO in the working directory, and a list that gets an entry
    whenever anything holds it open for reading (a writer's non-blocking open succeeds only
    then; closing it gives that reader end-of-file, so nothing hangs)."""
    fifo = tmp_path / "private.flac"
    os.mkfifo(fifo)
    monkeypatch.chdir(tmp_path)
    opened: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader
                time.sleep(0.002)
                continue
            opened.append("opened for reading")
            os.close(fd)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield fifo, opened
    stop.set()
    watcher.join()


def test_playlist_never_opens_the_file_it_names(watched_fifo: tuple[Path, list[str]]) -> None:
    fifo, opened = watched_fifo
    for playlist in (
        b"ffconcat version 1.0\nfile private.flac\n",
        b"ffconcat version 1.0\nfile 'file:" + bytes(fifo) + b"'\n",
        b"#EXTM3U\n#EXTINF:10,\nprivate.flac\n#EXT-X-ENDLIST\n",
    ):
        with pytest.raises(BadAudio):
            decode_file(playlist)
    assert opened == []


# --- the process around the decoder: crashes, limits, timeouts ------------------------------

FAKE_WORKER = """
import os, signal, sys, time
sys.path.insert(0, {decoding!r})
import worker
worker.harden()
job = worker.read_job(sys.stdin.buffer)
worker.limit(job)
data = worker.read_exact(sys.stdin.buffer, job.size)
out = sys.stdout.buffer
{action}
worker.send(out, b"D", b"{{}}")
"""

ACTIONS = {
    "crash": "os.kill(os.getpid(), signal.SIGSEGV)",
    "spin": "while True: pass",
    "hang": "time.sleep(3600)",
    "allocate": "hog = bytearray(8 << 30)\nhog[::4096] = b'x' * len(hog[::4096])",
    "oversend": "worker.send(out, b'A', bytes(2 * job.max_samples + 2))\ntime.sleep(3600)",
    "garble": "out.write(b'Z' * 100)\nout.flush()\ntime.sleep(3600)",
    "huge_record": "out.write(b'A\\xff\\xff\\xff\\xff')\nout.flush()\ntime.sleep(3600)",
    "bad_json": "worker.send(out, b'E', b'[1, 2')",
}


@pytest.fixture
def fake_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A decoder process that misbehaves on purpose (its spare is not left for others)."""
    sandbox._pool.close()
    path = tmp_path / "fake_worker.py"
    monkeypatch.setattr(sandbox, "WORKER", path)
    monkeypatch.setattr(sandbox, "CPU_BASE_SECONDS", 1)
    # Time enough that the CPU limit comes first on a loaded machine; "hang" shortens it.
    monkeypatch.setattr(sandbox, "WALL_SLACK_SECONDS", 60)
    yield path
    sandbox._pool.close()


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        ("crash", BadAudio, "the decoder crashed \\(SIGSEGV\\)"),
        ("spin", BadAudio, "the decoder used up its 1 s of CPU time"),
        ("hang", BadAudio, "the decoder did not finish in time"),
        ("allocate", BadAudio, "the decoder stopped without an answer"),
        ("oversend", AudioTooLarge, "more than daemon.max_audio_seconds \\(2 s\\)"),
        ("garble", BadAudio, "the decoder answered with something else than samples"),
        ("huge_record", BadAudio, "the decoder answered with something else than samples"),
        ("bad_json", BadAudio, "the decoder answered with something else than samples"),
    ],
)
def test_a_failing_decoder_is_a_typed_error_logged_without_content(
    fake_worker: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    error: type[BadAudio],
    message: str,
) -> None:
    if action == "hang":
        monkeypatch.setattr(sandbox, "WALL_SLACK_SECONDS", 1)
    decoding = str(Path(sandbox.__file__).parent)
    fake_worker.write_text(FAKE_WORKER.format(decoding=decoding, action=ACTIONS[action]))
    secret = b"SECRET-AUDIO-CONTENT" * 50
    with pytest.raises(error, match=message) as caught:
        decode_file(secret, max_seconds=2)
    assert type(caught.value) is error
    assert "SECRET" not in caplog.text and "SECRET" not in str(caught.value)


def test_cancelled_decode_stops_its_process() -> None:
    with pytest.raises(sandbox.Cancelled) as caught:
        decode_file(audio_fuzz.encode("flac"), cancelled=lambda: True)
    assert caught.value.code == "cancelled"


def test_a_decoder_process_serves_one_file() -> None:
    """Nothing one file did to FFmpeg's state is there for the next file: each gets a
    process of its own (and one is started ahead for the next)."""
    data = audio_fuzz.encode("wav", seconds=0.5)
    decode_file(data)
    first = sandbox._pool._spare
    decode_file(data)
    assert first is not None and first.wait(timeout=10) == 0  # used, and gone
    assert sandbox._pool._spare is not None and sandbox._pool._spare is not first


def test_an_infinite_limit_is_a_week() -> None:
    assert decode_file(audio_fuzz.encode("wav", seconds=0.5), max_seconds=float("inf")).size == 8000


def test_prepare_starts_one_decoder_process_ahead() -> None:
    from whisperd.audio import prepare_file_decoder

    sandbox._pool.close()
    prepare_file_decoder()
    spare = sandbox._pool._spare
    prepare_file_decoder()
    assert spare is not None and sandbox._pool._spare is spare and spare.poll() is None
    decode_file(audio_fuzz.encode("wav", seconds=0.5))
    assert spare.wait(timeout=10) == 0  # it decoded that file


LIMITS_PROBE = """
import ctypes, json, os, sys
sys.path.insert(0, {decoding!r})
import worker
worker.harden()
worker.limit(worker.Job(size=1000, max_samples=16000, cpu_seconds=7, memory_bytes=64 << 20))
found = {{}}
def attempt(name, action):
    try:
        action()
        found[name] = "allowed"
    except (OSError, MemoryError) as exc:
        found[name] = type(exc).__name__
attempt("open a file", lambda: open("/etc/hostname", "rb"))
attempt("open a socket", lambda: __import__("socket").socket())
attempt("resolve the working directory", os.getcwd)
attempt("allocate 1 GiB", lambda: bytearray(1 << 30))
found["dumpable"] = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
import resource
found["cpu"] = resource.getrlimit(resource.RLIMIT_CPU)
found["core"] = resource.getrlimit(resource.RLIMIT_CORE)
print(json.dumps(found))
"""


def test_the_decoder_process_confines_itself() -> None:
    """What a demuxer (or code run through an FFmpeg bug) meets in the decoder process."""
    import json

    decoding = str(Path(sandbox.__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", LIMITS_PROBE.format(decoding=decoding)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found == {
        "open a file": "OSError",  # EMFILE: no descriptor left to open anything
        "open a socket": "OSError",
        "resolve the working directory": "FileNotFoundError",
        "allocate 1 GiB": "MemoryError",
        "dumpable": 0,
        "cpu": [7, 8],
        "core": [0, 0],
    }


def test_release_ends_the_waiting_decoder_process() -> None:
    from whisperd.audio import prepare_file_decoder, release_file_decoder

    prepare_file_decoder()
    spare = sandbox._pool._spare
    assert spare is not None
    release_file_decoder()
    assert spare.poll() == 0 and sandbox._pool._spare is None
    assert decode_file(audio_fuzz.encode("wav", seconds=0.5)).size == 8000  # one on demand
