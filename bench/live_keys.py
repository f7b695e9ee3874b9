"""Live typing latency (issue 12), driven at whisperd-keys' own interfaces.

    .venv/bin/python -m bench.live_keys [--reps 5,3,2] [--out bench/live_keys.md]

The real ``DictationService`` with ``[keys] live = true`` (the default), a real whisperd
on a temporary socket, the real client, joiner, typist and ``Typer`` with the default
``type_delay``; only the hardware is doubled: the microphone plays an espeak-ng utterance
in 20 ms blocks at real-time pace (bench.dictation.RealtimeRecorder), and the virtual
keyboard records (the typer is asked one character at a time, so the time each
character's last key event went out is known). Figures, median and p90:

- **release → last character typed**: what the user waits for after letting go;
- **pause → its piece typed**: from the end of the last word before a pause to the last
  character of the piece committed there, for pieces typed while the key is still held;
- the commit event's part of that (pause → commit event arrives).

Each utterance (5, 30, 60 s; the suite's seeds) runs as recorded (room noise after the
last word, as the suite's dictation section) and cut 50 ms after its last word.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from evdev import ecodes

from bench import material
from bench.daemon import Daemon
from bench.dictation import IdleSource, RealtimeRecorder
from whisperd.client import Client
from whisperd.keys.config import KeysConfig
from whisperd.keys.layout import CharMap, LayoutName
from whisperd.keys.livetype import join_pieces
from whisperd.keys.service import DictationService
from whisperd.keys.trigger import KeyEvent, Mode, TriggerMachine
from whisperd.keys.typer import Typer, TypeReport
from whisperd.keys.virtual import RecordingKeyboard

DEVICE = "/dev/input/event-bench"
SEEDS = {5: 105, 30: 130, 60: 160}  # as bench/suite.py
RATE = material.SAMPLE_RATE


class CharTimedTyper(Typer):
    """The real typer, asked one character at a time: the time each one was done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.char_times: list[float] = []

    def type_text(
        self,
        text: str,
        cancel: threading.Event | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> TypeReport:
        total = TypeReport()
        for char in text:
            report = super().type_text(char, cancel, interrupt)
            if not report.consumed:
                break
            self.char_times.append(time.monotonic())
            total.typed += report.typed
            total.fallback += report.fallback
            total.skipped += report.skipped
            total.consumed += report.consumed
            total.methods += report.methods
        return total


class SpyClient:
    def __init__(self, real: Client, commits: list[tuple[float, dict[str, Any]]]) -> None:
        self.real = real
        self.commits = commits

    def start_live(self, on_commit: Callable[[dict[str, Any]], None], **kwargs: Any) -> Any:
        def spy(event: dict[str, Any]) -> None:
            self.commits.append((time.monotonic(), event))
            on_commit(event)

        return self.real.start_live(spy, **kwargs)

    def close(self) -> None:
        self.real.close()


def speech_end(audio: np.ndarray) -> int:
    from whisperd.audio import Levels

    levels = Levels()
    levels.add(audio)
    end = levels.speech_end(0, floor=0.0005)
    return audio.shape[0] if end is None else end


class LiveBench:
    def __init__(self, socket_path: str) -> None:
        self.config = KeysConfig(socket_path=socket_path, language="en")
        self.recorder = RealtimeRecorder(RATE)
        self.keyboard = RecordingKeyboard()
        self.typer = CharTimedTyper(
            self.keyboard, CharMap.for_layout(LayoutName("us")), delay=self.config.type_delay
        )
        self.commits: list[tuple[float, dict[str, Any]]] = []

        def factory() -> SpyClient:
            real = Client.connect(socket_path=socket_path, timeout=600, autostart=False)
            return SpyClient(real, self.commits)

        self.service = DictationService(
            TriggerMachine(combo=(ecodes.KEY_INSERT,), mode=Mode.HOLD, max_recording=300),
            IdleSource(),
            self.recorder,
            self.keyboard,
            self.typer,
            factory,  # type: ignore[arg-type]
            self.config,
        )

    def run(self, audio: np.ndarray) -> dict[str, Any]:
        self.commits.clear()
        self.typer.char_times.clear()
        self.recorder.load(material.float_to_s16(audio))
        self.recorder.finished.clear()  # begin() runs in the session thread, later
        self.service.step([KeyEvent(DEVICE, ecodes.KEY_INSERT, 1, time.monotonic())])
        self.recorder.finished.wait()
        release = time.monotonic()
        self.service.step([KeyEvent(DEVICE, ecodes.KEY_INSERT, 0, release)])
        session = self.service.sessions[-1]
        session.join(900)
        if session.is_alive():
            raise RuntimeError("the dictation did not end")
        t0 = self.recorder.started_at
        times = self.typer.char_times
        texts = [str(e["text"]) for _, e in self.commits]
        pause_typed, pause_commit = [], []
        for k, (arrived, event) in enumerate(self.commits):
            if event.get("final") or not event["text"] or event["start"] == event["end"]:
                continue  # words final mid-sentence end at no known pause
            upto = len(join_pieces(texts[: k + 1]))
            if upto > len(times) or times[upto - 1] >= release:
                continue  # typed after the release: counted in release -> last
            cut = min(audio.shape[0], int(float(event["end"]) * RATE))
            paused_at = t0 + speech_end(audio[:cut]) / RATE
            pause_typed.append(times[upto - 1] - paused_at)
            pause_commit.append(arrived - paused_at)
        last = times[-1] - release if times else float("nan")
        final = next((t for t, e in self.commits if e.get("final")), None)
        if final is None:
            raise RuntimeError("the dictation ended without a final commit event")
        return {
            "release_to_last": max(0.0, last),
            "release_to_final": final - release,
            "pause_to_typed": pause_typed,
            "pause_to_commit": pause_commit,
            "pieces": len([t for t in texts if t]),
            "mid_sentence": sum(1 for _, e in self.commits if e["text"] and e["start"] == e["end"]),
            "typed_before_release": sum(1 for t in times if t < release),
            "chars": len(times),
            "text": join_pieces(texts),
        }

    def close(self) -> None:
        self.service.stop_event.set()
        self.service.shutdown()


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def ms(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values) * 1000:.0f} / {p90(values) * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", default="5,3,2", help="runs for 5, 30, 60 s")
    parser.add_argument("--out", default="", help="also write the table here")
    args = parser.parse_args(argv)
    reps = dict(zip(SEEDS, (int(n) for n in args.reps.split(",")), strict=True))
    work = Path(tempfile.mkdtemp(prefix="bench-live-keys."))
    gen = material.Generator(work)
    (work / "live").mkdir(mode=0o700)  # whisperd refuses a runtime dir others can enter
    daemon = Daemon(work, "live").start()
    bench = LiveBench(str(daemon.socket))
    lines = [
        f"Live typing (whisperd-keys, `live = true`, type_delay "
        f"{bench.config.type_delay * 1000:g} ms), load average at start "
        f"{__import__('os').getloadavg()[0]:.1f}",
        "",
        "| utterance | release | runs | release → last char typed, median / p90 "
        "| of which release → final commit event "
        "| pause → piece typed (while held), median / p90 | of which pause → commit event "
        "| pieces (of them mid-sentence) | chars typed before release / all | WER |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    try:
        bench.run(gen.utterance(5.0, seed=2).audio)  # warm-up: model, imports
        for seconds, runs in reps.items():
            item = gen.utterance(float(seconds), seed=SEEDS[seconds])
            cut = min(item.audio.shape[0], speech_end(item.audio) + int(0.05 * RATE))
            for label, audio in (("as recorded", item.audio), ("50 ms after", item.audio[:cut])):
                got = [bench.run(audio) for _ in range(runs)]
                errors, words = material.errors(item.reference, got[0]["text"])
                line = (
                    f"| {seconds} s | {label} | {runs} | "
                    f"{ms([g['release_to_last'] for g in got])} | "
                    f"{ms([g['release_to_final'] for g in got])} | "
                    f"{ms([x for g in got for x in g['pause_to_typed']])} | "
                    f"{ms([x for g in got for x in g['pause_to_commit']])} | "
                    f"{got[0]['pieces']} ({got[0]['mid_sentence']} mid-sentence) | "
                    f"{got[0]['typed_before_release']} / {got[0]['chars']} | "
                    f"{errors / max(words, 1) * 100:.1f}% |"
                )
                lines.append(line)
                print(line, flush=True)
    finally:
        bench.close()
        daemon.stop()
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
