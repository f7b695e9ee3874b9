"""Live dictation (issue 12): accuracy of the committed pieces, and how soon they come.

``python -m bench.live [--quick] [--part accuracy|latency|all]``; writes
bench/live_results.md and bench/live_results.json. Not a timed test: figures only.

Accuracy (in-process, no timing involved): the daemon's real ``Scheduler`` and real
``Engine`` receive each utterance in 20 ms blocks; after each block the bench waits until
the worker is idle, so every draft and window the policy asks for is made, as on a machine
fast enough to keep up. Three requests of the same audio are scored:
- ``file``: a file request (faster-whisper's own path, timestamps, VAD);
- ``live``: the live request (whisperd-keys' options plus ``live``), the pieces joined;
- ``dictation``: the stream request as whisperd-keys sent it before (``without_timestamps``,
  drafts, windows, the fast path), for comparison.
Sets: the espeak sentence set, the shared recordings, and long dictations built from
espeak sentences with natural pauses (0.3-1.2 s), about 30 s and 60 s.

Latency (a real whisperd, audio at real-time pace, tests/integration/live_stream.py):
- ``pause -> commit``: from the end of a sentence followed by a pause to the arrival of
  the commit event that holds it;
- ``release -> final``: from ``end`` to the final commit event, for 5, 30 and 60 s
  utterances as recorded (trailing room noise) and released 50 ms after the last word.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.fastpath_corpus import SENTENCES
from bench.material import Generator, Item, WerTally, recordings, room
from tests.integration.live_stream import stream_virtual
from whisperd.engine.samples import SAMPLE_RATE

HERE = Path(__file__).resolve().parent
KEYS_OPTIONS: dict[str, Any] = {"without_timestamps": True}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dictation(gen: Generator, seconds: float, seed: int) -> tuple[Item, list[float]]:
    """Sentences with natural pauses up to ``seconds``, released 50 ms after the last
    word; also the times (s) where each sentence but the last ends."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    pool = list(SENTENCES)
    rng.shuffle(pool)
    parts, texts, ends, used = [room(0.2, nrng)], [], [], 0.2
    for text in pool:
        speech, gap = gen.speak(text), rng.uniform(0.3, 1.2)
        if used + speech.size / SAMPLE_RATE + gap > seconds:
            break
        parts += [speech, room(gap, nrng)]
        texts.append(text)
        used += speech.size / SAMPLE_RATE
        ends.append(used)
        used += gap
    parts[-1] = room(0.05, nrng)  # released 50 ms after the last word
    audio = np.concatenate(parts).astype(np.float32)
    return Item(f"dictation{seconds:g}s-{seed}", audio, " ".join(texts)), ends[:-1]


# -- accuracy: the real scheduler in virtual time ---------------------------------------


def accuracy(
    quick: bool, live_options: dict[str, Any], daemon_config: dict[str, Any], lag: float = 0.0
) -> dict[str, Any]:
    from whisperd.config import DaemonConfig
    from whisperd.daemon.scheduler import Scheduler
    from whisperd.daemon.state import DaemonState
    from whisperd.engine import Engine

    gen = Generator(Path(tempfile.mkdtemp(prefix="bench-live-")))
    sets: dict[str, list[Item]] = {
        "espeak sentences": gen.sentence_set(6 if quick else 20, 0, "s"),
        "recordings": [r for r in recordings() if r.name in ("jfk", "stereo_left", "mit_full")]
        if quick
        else recordings(),
        "dictation 30 s": [dictation(gen, 30, s)[0] for s in ((1,) if quick else (1, 2, 5))],
        "dictation 60 s": [dictation(gen, 60, s)[0] for s in ((3,) if quick else (3, 4))],
    }
    config = DaemonConfig(**daemon_config)
    engine = Engine(config)
    out: dict[str, Any] = {}

    async def run() -> None:
        scheduler = Scheduler(config, DaemonState(False), lambda: None, lambda: None, engine)
        for name, items in sets.items():
            tallies = {k: WerTally() for k in ("file", "live", "dictation")}
            for item in items:
                texts = {
                    "file": engine.transcribe(item.audio, {}).text,
                    "live": await stream_virtual(
                        scheduler, item.audio, {**KEYS_OPTIONS, **live_options, "live": True}, lag
                    ),
                    "dictation": await stream_virtual(scheduler, item.audio, KEYS_OPTIONS, lag),
                }
                for key, text in texts.items():
                    tallies[key].add(item.reference, text)
                log(
                    f"{name} {item.name}: "
                    + ", ".join(f"{k} {t.errors}" for k, t in tallies.items())
                )
            out[name] = {
                k: {"errors": t.errors, "words": t.words, "wer": t.wer} for k, t in tallies.items()
            }
        scheduler.shutdown()

    asyncio.run(run())
    return out


# -- latency: a real daemon at real-time pace -------------------------------------------


def latency(quick: bool) -> dict[str, Any]:
    from tests.conftest import start_daemon, stop_daemon
    from tests.integration.live_stream import stream_live

    gen = Generator(Path(tempfile.mkdtemp(prefix="bench-live-lat-")))
    work = Path(tempfile.mkdtemp(prefix="bench-live-daemon-"))
    daemon = start_daemon(work, "--idle-timeout", "600")
    pauses: list[float] = []
    own: list[float] = []
    release: dict[str, list[float]] = {}
    try:
        for seconds in (5, 30, 60):
            for seed in (11,) if quick else (11, 12, 13):
                item, ends = dictation(gen, seconds, seed)
                audio = np.clip(np.round(item.audio * 32768.0), -32768, 32767).astype(np.int16)
                tail = room(0.6, np.random.default_rng(seed)).astype(np.float32)
                recorded = np.concatenate([audio, np.round(tail * 32768.0).astype(np.int16)])
                for how, pcm in (("as recorded", recorded), ("released at the last word", audio)):
                    with daemon.connect() as sock:
                        sock.settimeout(300)
                        from tests import wire

                        sock.sendall(wire.msg({"type": "hello", "id": 0, "version": 1}))
                        wire.recv(sock)
                        run = stream_live(sock, "bench", pcm, KEYS_OPTIONS)
                    final = run.commits[-1]
                    key = f"{seconds} s {how}"
                    release.setdefault(key, []).append(
                        next(t for t, r in run.replies if r is final) - run.end_sent
                    )
                    if how == "as recorded":
                        for end_s in ends:  # each pause: the first commit reaching past it
                            commit = next((c for c in run.commits if c["end"] >= end_s), None)
                            if commit is not None and not commit["final"]:
                                pauses.append(run.arrival(commit) - end_s)
                        for commit in run.commits[:-1]:  # each commit: its own pause
                            spoken = max((e for e in ends if e <= commit["end"]), default=None)
                            if spoken is not None:
                                own.append(run.arrival(commit) - spoken)
                    log(f"{key}: release -> final {release[key][-1]:.3f} s")
    finally:
        stop_daemon(daemon)

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median": round(statistics.median(ordered), 3),
            "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
            "n": len(ordered),
        }

    return {
        "pause_to_commit": summary(pauses) if pauses else None,
        "commit_after_its_pause": summary(own) if own else None,
        "release_to_final": {k: summary(v) for k, v in release.items()},
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Live dictation figures (bench/live.py)",
        "",
        f"Run: {results['when']}, "
        f"{'quick' if results['quick'] else 'full'}; machine shared with other jobs.",
        "",
    ]
    for key in ("live_options", "daemon_config"):
        if results.get(key):
            lines += [f"Not the defaults: {key} = `{json.dumps(results[key])}`", ""]
    if results.get("lag"):
        lines += [
            f"Streams with a lag: {results['lag']:g} s of audio arrive while each draft or "
            "window decodes (a slower machine, or a client sending faster than real time).",
            "",
        ]
    if "accuracy" in results:
        lines += [
            "## Word errors: file request vs live vs dictation before",
            "",
            "| set | file | live | dictation (before) |",
            "|---|---|---|---|",
        ]
        for name, row in results["accuracy"].items():
            cells = [
                f"{row[k]['errors']}/{row[k]['words']} ({100 * (row[k]['wer'] or 0):.1f} %)"
                for k in ("file", "live", "dictation")
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if "latency" in results:
        lat = results["latency"]
        lines += ["## Latency (real daemon, real-time pace)", ""]
        if lat["pause_to_commit"]:
            p = lat["pause_to_commit"]
            lines.append(
                f"- every sentence end followed by a pause -> the commit event that holds it: "
                f"median {p['median']} s, p90 {p['p90']} s ({p['n']} pauses; a whole sentence "
                "is committed in its own pause, other pieces once the next pause confirms them)"
            )
        if lat.get("commit_after_its_pause"):
            p = lat["commit_after_its_pause"]
            lines.append(
                f"- the pause that ends a committed piece -> its commit event: median "
                f"{p['median']} s, p90 {p['p90']} s ({p['n']} commits)"
            )
        lines += [
            "",
            "| utterance | release -> final commit, median | p90 | runs |",
            "|---|---|---|---|",
        ]
        for key, s in lat["release_to_final"].items():
            lines.append(f"| {key} | {s['median']} s | {s['p90']} s | {s['n']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=("accuracy", "latency", "all"), default="all")
    parser.add_argument(
        "--live-options",
        type=json.loads,
        default={},
        help="extra options of the live request (accuracy part), as JSON: '{\"beam_size\": 1}'",
    )
    parser.add_argument(
        "--daemon-config",
        type=json.loads,
        default={},
        help="[daemon] settings for the accuracy part, as JSON (e.g. '{\"draft_pause\": 0.2}')",
    )
    parser.add_argument(
        "--lag",
        type=float,
        default=0.0,
        help="seconds of audio that arrive while each draft or window decodes (accuracy part)",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
    }
    if args.part in ("accuracy", "all"):
        results["accuracy"] = accuracy(args.quick, args.live_options, args.daemon_config, args.lag)
        results["live_options"] = args.live_options
        results["daemon_config"] = args.daemon_config
        results["lag"] = args.lag
    if args.part in ("latency", "all"):
        results["latency"] = latency(args.quick)
    suffix = "" if args.part == "all" else f"_{args.part}"
    if args.lag:
        suffix += f"_lag{args.lag:g}"
    if args.live_options or args.daemon_config:
        suffix += "_variant"  # the committed figures are the defaults' own
    (HERE / f"live_results{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / f"live_results{suffix}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
