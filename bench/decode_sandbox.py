"""What decoding a file in the decoder process costs against decoding it in the daemon.

    .venv/bin/python -m bench.decode_sandbox [--runs 20] [--audio ../shared/audio]

Two files cut from the shared recordings with sox: 3 s (dictation-sized) and 60 s, as
FLAC and MP3. "in-process" is what the daemon did before (faster-whisper's decode_audio
in the daemon); "sandbox" is whisperd.audio.decode_file (a fresh, confined process per
file, one started ahead). "sandbox, cold" starts its process on demand (no spare ready:
the first file after the daemon starts); "back-to-back" sends the next file as soon as the
last one is decoded, so the spare may still be importing PyAV. Figures: docs/robustness.md.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from faster_whisper.audio import decode_audio

from whisperd.audio import decode_file
from whisperd.decoding import sandbox

ROOT = Path(__file__).resolve().parent.parent


def cut(source: Path, seconds: float, suffix: str, folder: Path) -> bytes:
    """The first ``seconds`` of ``source`` (looped when shorter) as a ``suffix`` file."""
    target = folder / f"cut{seconds:.0f}{suffix}"
    repeat = ["repeat", "20"]
    subprocess.run(
        ["sox", str(source), str(target), *repeat, "trim", "0", str(seconds)], check=True
    )
    return target.read_bytes()


def timed(action: Callable[[], object], runs: int, pause: float) -> str:
    """Median and (fastest) wall time in ms: the fastest is the cost on an idle machine."""
    times = []
    for _ in range(runs):
        time.sleep(pause)
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return f"{statistics.median(times) * 1000:.0f} ({min(times) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--audio", type=Path, default=ROOT.parent / "shared" / "audio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            f"{seconds:.0f} s {suffix[1:]}": cut(
                args.audio / "jfk.flac", seconds, suffix, Path(tmp)
            )
            for seconds in (3.0, 60.0)
            for suffix in (".flac", ".mp3")
        }
    print("ms, median (fastest) of the runs")
    print("| file | in-process | sandbox (spare ready) | back-to-back | sandbox, cold |")
    print("|---|---|---|---|---|")
    for name, data in files.items():
        print(row(name, data, args.runs))


def row(name: str, data: bytes, runs: int) -> str:
    decode_file(data)  # a spare is ready from here on
    inside = timed(lambda: decode_audio(io.BytesIO(data)), runs, 0.0)
    warm = timed(lambda: decode_file(data), runs, 0.3)
    rushed = timed(lambda: decode_file(data), runs, 0.0)

    def cold() -> None:
        sandbox._pool.close()
        decode_file(data)

    cold_ms = timed(cold, max(3, runs // 4), 0.3)
    return f"| {name} | {inside} | {warm} | {rushed} | {cold_ms} |"


if __name__ == "__main__":
    main()
