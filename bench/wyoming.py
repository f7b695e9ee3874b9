"""Warm transcription through the Wyoming front vs the Unix socket, for the same audio.

``python -m bench.wyoming [--runs N]``; writes bench/wyoming_results.md and .json. Figures
only, not a test. One in-process whisperd side (tests/integration/wyoming_harness.py):
the real Scheduler and model, the Wyoming front on 127.0.0.1 and whisperd's own Unix
Connection on the same Scheduler; the model is loaded first. Each run sends the same
16 kHz mono PCM as fast as it goes, on a fresh connection, through each path in turn
(alternating which goes first); measured: from the last byte sent (audio-stop / end)
to the transcript (result), and the whole request from connecting. Drafts and stream
windows are off, so each path makes exactly one decode and the difference is the
front's own cost. Both paths make the same request: a live PCM stream (the Wyoming front
asks for one, to stream transcript-chunk events), and, as a second row, a plain PCM
stream (the front with transcript streaming off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def audio_items() -> dict[str, bytes]:
    from tests.conftest import espeak, shared_audio
    from tests.integration.wyoming_harness import pcm_of
    from whisperd.audio import decode_file

    items = {}
    jfk = decode_file(shared_audio("jfk.flac").read_bytes())
    items["jfk.flac (11.0 s)"] = pcm_of(np.rint(jfk * 32767))
    folder = Path(tempfile.mkdtemp(prefix="bench-wyoming-"))
    wav = espeak("Turn on the kitchen lights and set them to fifty percent.", folder / "c.wav")
    pcm = wav.read_bytes()[44:]  # sox's plain 44-byte WAV header
    items[f"a voice command ({len(pcm) / 32000:.1f} s, espeak-ng)"] = pcm
    # Digital silence is answered without the model ("silent"): the fronts' own cost alone.
    items["1 s of silence (no decode)"] = bytes(32000)
    return items


def unix_request(path: Path, pcm: bytes, live: bool) -> tuple[float, float, str]:
    """(last byte -> result, connect -> result, text) on the Unix socket."""
    from tests import wire
    from tests.integration.wyoming_harness import CHUNK, RATE

    began = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(300)
        sock.connect(str(path))
        wire.hello(sock)
        options: dict[str, Any] = {"language": "en", **({"live": True} if live else {})}
        request = {"type": "transcribe", "id": 1, "format": "pcm", "encoding": "s16le"}
        sock.sendall(wire.msg({**request, "sample_rate": RATE, "channels": 1, "options": options}))
        wire.recv(sock)
        for start in range(0, len(pcm), CHUNK):
            part = pcm[start : start + CHUNK]
            sock.sendall(wire.msg({"type": "audio", "id": 1, "size": len(part)}) + wire.frame(part))
        sock.sendall(wire.msg({"type": "end", "id": 1}))
        sent = time.perf_counter()
        while (reply := wire.recv(sock))["type"] != "result":
            assert reply["type"] in ("segment", "commit"), reply
        done = time.perf_counter()
    return done - sent, done - began, str(reply["text"])


def wyoming_request(port: int, pcm: bytes, streaming: bool) -> tuple[float, float, str]:
    from tests.integration.wyoming_harness import transcribe_wyoming

    began = time.perf_counter()
    received = asyncio.run(transcribe_wyoming(port, pcm, streaming=streaming))
    done = time.perf_counter()
    # Both on time.monotonic(), the clock the events' arrival times are on.
    arrived = next(t for t, e in received.events if e.type == "transcript")
    return arrived - received.stop_sent, done - began, received.text


def measure(streaming: bool, runs: int, items: dict[str, bytes]) -> list[dict[str, Any]]:
    from tests.integration.wyoming_harness import Harness
    from whisperd.config import DaemonConfig

    config = DaemonConfig(stream_window=0.0, draft_pause=0.0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-wyoming-") as folder:
        with Harness(Path(folder), config, streaming=streaming) as harness:
            for name, pcm in items.items():
                tails: dict[str, list[float]] = {"wyoming": [], "unix": []}
                totals: dict[str, list[float]] = {"wyoming": [], "unix": []}
                same = True
                for run in range(runs + 1):  # run 0 warms both paths and is not counted
                    order = ["wyoming", "unix"] if run % 2 else ["unix", "wyoming"]
                    texts = {}
                    for path in order:
                        if path == "wyoming":
                            tail, total, texts[path] = wyoming_request(harness.port, pcm, streaming)
                        else:
                            tail, total, texts[path] = unix_request(
                                harness.unix_path, pcm, streaming
                            )
                        if run:
                            tails[path].append(tail)
                            totals[path].append(total)
                    same = same and texts["wyoming"] == texts["unix"]
                rows.append(row(name, streaming, tails, totals, same))
    return rows


def ms(values: list[float], q: float = 0.5) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def row(
    name: str,
    streaming: bool,
    tails: dict[str, list[float]],
    totals: dict[str, list[float]],
    same: bool,
) -> dict[str, Any]:
    return {
        "audio": name,
        "request": "live PCM stream (transcript streaming on)" if streaming else "PCM stream",
        "runs": len(tails["unix"]),
        "unix_tail_median_ms": ms(tails["unix"]),
        "wyoming_tail_median_ms": ms(tails["wyoming"]),
        "unix_tail_p90_ms": ms(tails["unix"], 0.9),
        "wyoming_tail_p90_ms": ms(tails["wyoming"], 0.9),
        "overhead_median_ms": round(ms(tails["wyoming"]) - ms(tails["unix"]), 1),
        "unix_total_median_ms": ms(totals["unix"]),
        "wyoming_total_median_ms": ms(totals["wyoming"]),
        "same_text_every_run": same,
        "paired_difference_median_ms": round(
            1000
            * statistics.median(
                w - u for w, u in zip(tails["wyoming"], tails["unix"], strict=True)
            ),
            1,
        ),
    }


COLUMNS = [
    ("audio", "{audio}"),
    ("request", "{request}"),
    ("Unix tail median / p90", "{unix_tail_median_ms} / {unix_tail_p90_ms} ms"),
    ("Wyoming tail median / p90", "{wyoming_tail_median_ms} / {wyoming_tail_p90_ms} ms"),
    ("overhead", "{overhead_median_ms:+} ms"),
    ("paired", "{paired_difference_median_ms:+} ms"),
    ("Unix total", "{unix_total_median_ms} ms"),
    ("Wyoming total", "{wyoming_total_median_ms} ms"),
    ("same text", "{same}"),
]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Wyoming front vs Unix socket (bench/wyoming.py)",
        "",
        f"{results['when']}; {results['machine']}; load average {results['load']}; "
        f"tiny.en int8, CPU; {results['runs']} runs per row after one warm-up run; audio "
        "sent as fast as it goes.",
        "",
        "`tail`: from the last byte sent (audio-stop / end) to the transcript (result); "
        "`total`: the whole request from connecting. Overhead: Wyoming's median tail minus "
        "the Unix socket's; paired: the median of the per-run differences.",
        "",
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in results["rows"]:
        values = {**r, "same": "yes" if r["same_text_every_run"] else "NO"}
        lines.append("| " + " | ".join(cell.format(**values) for _, cell in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    from whisperd.privacy import keep_local

    keep_local()
    items = audio_items()
    rows = measure(True, args.runs, items) + measure(False, args.runs, items)
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "runs": args.runs,
        "rows": rows,
    }
    (HERE / "wyoming_results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "wyoming_results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
