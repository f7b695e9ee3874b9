"""``python -m bench``: every whisperd performance figure, side by side, in one run.

    .venv/bin/python -m bench              # full run (about 15 minutes on 2 cores)
    .venv/bin/python -m bench --quick      # a few minutes, fewer repetitions
    .venv/bin/python -m bench --model small.en

Writes ``bench/results.json`` and ``bench/results.md``. What each row means:
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import material
from bench.daemon import (
    REPO,
    Daemon,
    activated_request,
    alive,
    cpu_seconds,
    processes_mentioning,
    rss_kib,
    transcribe,
)
from bench.material import Item, WerTally

HERE = Path(__file__).resolve().parent

# Daemon settings under test; "default" is the daemon with no configuration at all.
DEFAULT: dict[str, Any] = {}
FAST_OFF: dict[str, Any] = {"fast_short_audio": False}
# Neither the short-audio fast path nor stream windows (long PCM streams transcribed in
# windows while they arrive): one faster-whisper call per request, like in-process.
PLAIN: dict[str, Any] = {"fast_short_audio": False, "stream_window": 0, "draft_pause": 0}
# No drafts during pauses (daemon.draft_pause = 0), everything else default.
NO_DRAFTS: dict[str, Any] = {"draft_pause": 0}
DICTATION_OPTIONS = {"without_timestamps": True}  # what whisperd-keys sends (KeysConfig)

# Same settings as the daemon's defaults, for in-process faster-whisper.
DAEMON_SETTINGS = {"beam_size": 5, "vad_filter": True}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90)) if values else float("nan")


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "median": med(values),
        "p90": p90(values),
        "min": min(values, default=float("nan")),
        "max": max(values, default=float("nan")),
        "n": len(values),
        "values": values,
    }


# --- the machine --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def cpuinfo() -> str:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "unknown"

    def meminfo() -> float:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
        return float("nan")

    def os_name() -> str:
        try:
            for line in Path("/etc/os-release").read_text().splitlines():
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip('"')
        except OSError:
            pass
        return platform.system()

    def version(module: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(module)
        except Exception:  # noqa: BLE001
            return "absent"

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "cpu": cpuinfo(),
        "cores": os.cpu_count(),
        "ram_gib": round(meminfo(), 1),
        "os": os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "faster_whisper": version("faster-whisper"),
        "ctranslate2": version("ctranslate2"),
        "numpy": version("numpy"),
        "onnxruntime": version("onnxruntime"),
        "whisperd": version("whisperd"),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "whisperd")),
    }


# --- the run ------------------------------------------------------------------------------


class Context:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.workdir = workdir
        self.gen = material.Generator(workdir / "espeak")
        (workdir / "espeak").mkdir()
        self.daemons: dict[str, Daemon] = {}
        self.results: dict[str, Any] = {}
        self.loads: list[tuple[str, list[float]]] = []
        self._model: Any = None
        self._q: dict[str, np.ndarray] = {}

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    # in-process faster-whisper, the same model and device as the daemon
    @property
    def model(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            from whisperd.engine import resolve_model

            self.model_path = resolve_model(self.args.model).path
            self._model = WhisperModel(
                self.model_path, device="cpu", compute_type="int8", cpu_threads=0
            )
        return self._model

    def qaudio(self, item: Item) -> np.ndarray:
        """The exact samples the daemon sees (our PCM is 16-bit)."""
        if item.name not in self._q:
            self._q[item.name] = (
                np.frombuffer(item.pcm16(), dtype="<i2").astype(np.float32) / 32768.0
            )
        return self._q[item.name]

    def inproc(self, item: Item, **options: Any) -> tuple[float, str]:
        started = time.perf_counter()
        segments, _info = self.model.transcribe(self.qaudio(item), **options)
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        return time.perf_counter() - started, text

    def daemon(self, name: str, config: dict[str, Any], warm: Item | None = None) -> Daemon:
        if name not in self.daemons:
            log(f"starting whisperd '{name}' {config or '(no configuration)'}")
            d = Daemon(self.workdir, name, config, self.args.model)
            self.daemons[name] = d
            d.start(load=True, warm=warm.pcm16() if warm is not None else None)
        return self.daemons[name]

    def stop_all(self) -> None:
        for d in self.daemons.values():
            d.stop()
        self.daemons.clear()

    def mark(self, section: str) -> None:
        self.loads.append((section, list(os.getloadavg())))
        log(f"== {section} (load {os.getloadavg()[0]:.2f})")


def build_material(ctx: Context) -> None:
    log("generating espeak-ng material")
    g = ctx.gen
    ctx.utt3 = g.utterance(3.0, seed=3)
    jfk = material.shared_file("jfk.flac")
    ctx.jfk = (
        Item("jfk", material.decode(jfk), material.recordings_ref("jfk"), jfk, "recording")
        if jfk
        else g.utterance(11.0, seed=11)
    )
    long = material.shared_file("multilingual.mp3")
    if long is not None:
        ctx.long = Item(
            "multilingual",
            material.decode(long),
            material.recordings_ref("mit_full"),
            long,
            "recording",
        )
        ctx.long_note = "multilingual.mp3 (English then German; reference: the English half)"
    else:
        ctx.long = g.utterance(60.0, seed=60)
        ctx.long_note = "60 s of concatenated espeak-ng (multilingual.mp3 absent)"
    seeds = {2: 2, 5: 105, 10: 110, 30: 130, 60: 160}  # 2: "Open the door."
    ctx.dictation = {s: g.utterance(float(s), seed=seeds[s]) for s in seeds}
    n_wer = ctx.reps(30, 12)
    ctx.wer_espeak = g.sentence_set(n_wer, offset=0, name="wer")
    ctx.wer_recordings = material.recordings()
    ctx.files = g.sentence_set(ctx.reps(20, 10), offset=30, name="file", min_s=2.0, max_s=6.0)
    ctx.results["material"] = {
        "warm_clips": {i.name: round(i.seconds, 2) for i in (ctx.utt3, ctx.jfk, ctx.long)},
        "long_note": ctx.long_note,
        "dictation": {
            s: {"seconds": i.seconds, "words": len(i.reference.split())}
            for s, i in ctx.dictation.items()
        },
        "wer_espeak": len(ctx.wer_espeak),
        "wer_espeak_seconds": round(sum(i.seconds for i in ctx.wer_espeak), 1),
        "wer_recordings": [i.name for i in ctx.wer_recordings],
        "files": len(ctx.files),
        "files_seconds": round(sum(i.seconds for i in ctx.files), 1),
    }


# --- 1. warm request ----------------------------------------------------------------------


def section_warm(ctx: Context) -> None:
    ctx.mark("1. warm request: whisperd vs in-process")
    d_def = ctx.daemon("default", DEFAULT, warm=ctx.utt3)
    d_off = ctx.daemon("fastoff", FAST_OFF, warm=ctx.utt3)
    clips = [ctx.utt3, ctx.jfk, ctx.long]
    ctx.inproc(ctx.utt3, **DAEMON_SETTINGS)  # first call pays one-time costs
    reps = ctx.reps(7, 3)
    long_reps = ctx.reps(4, 2)  # the 60 s clip costs as much as all the others together
    kinds: dict[str, Callable[[Item], tuple[float, str, dict[str, Any]]]] = {}

    def inproc(item: Item) -> tuple[float, str, dict[str, Any]]:
        # the daemon decodes the file too: so does the in-process side
        assert item.path is not None
        started = time.perf_counter()
        segments, _ = ctx.model.transcribe(material.decode(item.path), **DAEMON_SETTINGS)
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        return time.perf_counter() - started, text, {}

    def over(
        d: Daemon, options: dict[str, Any] | None = None
    ) -> Callable[[Item], tuple[float, str, dict[str, Any]]]:
        def run(item: Item) -> tuple[float, str, dict[str, Any]]:
            assert item.path is not None
            wall, result = transcribe(d.socket, item.path.read_bytes(), "file", options)
            return wall, result["text"], result

        return run

    def inproc_fast(item: Item) -> tuple[float, str, dict[str, Any]]:
        # whisperd.engine.fastpath (the unpadded window) called in-process, no VAD: what the daemon
        # could reach once the engine uses it; None (regular path) above 30 s
        from whisperd.engine.fastpath import transcribe_unpadded

        assert item.path is not None
        started = time.perf_counter()
        res = transcribe_unpadded(ctx.model, material.decode(item.path), beam_size=5)
        wall = time.perf_counter() - started
        return wall, (res.text.strip() if res else ""), {"eligible": res is not None}

    kinds = {
        "inproc": inproc,
        "daemon_fastoff": over(d_off),
        "daemon_default": over(d_def),
        # files take faster-whisper's own path unless asked (whisperctl transcribe --fast)
        "daemon_fast": over(d_def, {"fast_short_audio": True}),
        "inproc_fastpath": inproc_fast,
    }
    raw: dict[str, dict[str, dict[str, list[Any]]]] = {
        c.name: {k: {"wall": [], "decode": [], "text": [], "path": []} for k in kinds}
        for c in clips
    }
    for rep in range(reps):
        order = list(kinds)[rep % len(kinds) :] + list(kinds)[: rep % len(kinds)]
        for clip in clips:
            if clip.seconds > 30 and rep >= long_reps:
                continue
            for kind in order:
                if kind == "inproc_fastpath" and clip.seconds > 30:
                    continue
                wall, text, result = kinds[kind](clip)
                cell = raw[clip.name][kind]
                cell["wall"].append(wall)
                cell["text"].append(text)
                if result and "timings" in result:
                    t = result["timings"]
                    cell["decode"].append(
                        t.get("decode", 0.0)
                        + t.get("audio_decode", 0.0)
                        + t.get("streamed_decode", 0.0)
                    )
                    cell["path"].append(result.get("path"))
        log(f"warm rep {rep + 1}/{reps}")
    out: dict[str, Any] = {}
    for clip in clips:
        r = raw[clip.name]
        row: dict[str, Any] = {"seconds": round(clip.seconds, 2)}
        for kind, cell in r.items():
            if not cell["wall"]:
                continue
            tally = WerTally()
            tally.add(clip.reference, cell["text"][0])
            row[kind] = {"wall": stats(cell["wall"]), "wer": tally.wer, "text": cell["text"][0]}
            if cell["decode"]:
                row[kind]["daemon_decode"] = stats(cell["decode"])
                row[kind]["client_minus_decode"] = stats(
                    [w - d for w, d in zip(cell["wall"], cell["decode"], strict=True)]
                )
                row[kind]["path"] = cell["path"][0]
        base = row["inproc"]["wall"]["median"]
        off = row["daemon_fastoff"]["wall"]["median"]
        dflt = row["daemon_default"]["wall"]["median"]
        # paired: each repetition ran both back to back, so the load of the moment cancels
        pairs = zip(r["daemon_fastoff"]["wall"], r["inproc"]["wall"], strict=True)
        row["overhead_ms"] = med([a - b for a, b in pairs]) * 1000
        row["overhead_median_diff_ms"] = (off - base) * 1000
        row["overhead_ratio"] = off / base
        row["overhead_wire_ms"] = row["daemon_fastoff"]["client_minus_decode"]["median"] * 1000
        row["default_vs_inproc_ms"] = (dflt - base) * 1000
        fast_req = row["daemon_fast"]["wall"]["median"]
        row["fastpath_gain_ms"] = (dflt - fast_req) * 1000
        row["fastpath_speedup"] = dflt / fast_req
        if "inproc_fastpath" in row:
            fast = row["inproc_fastpath"]["wall"]["median"]
            row["inproc_fastpath_gain_ms"] = (base - fast) * 1000
        out[clip.name] = row
    ctx.results["warm"] = out
    ctx.results["blas_threads"] = blas_lever(ctx)


BLAS_PROBE = r"""
import json, sys, time
from faster_whisper import WhisperModel, decode_audio
from whisperd.engine.fastpath import transcribe_unpadded
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8")
reps = int(sys.argv[2])
out = {}
for path in sys.argv[3:]:
    audio = decode_audio(path)
    model.transcribe(audio, beam_size=5, vad_filter=True)  # warm-up
    walls, fast = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        list(model.transcribe(audio, beam_size=5, vad_filter=True)[0])
        walls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        transcribe_unpadded(model, audio, beam_size=5, without_timestamps=True)
        fast.append(time.perf_counter() - t0)
    out[path] = {"regular": sorted(walls)[reps // 2], "fastpath": sorted(fast)[reps // 2]}
print(json.dumps(out))
"""


def blas_lever(ctx: Context) -> dict[str, Any]:
    """In-process faster-whisper with OpenBLAS as it comes vs OPENBLAS_THREAD_TIMEOUT=4
    (what whisperd sets): OpenBLAS threads spin after the log-mel features and take the
    cores from CTranslate2's encoder."""
    clips = [ctx.dictation[2], ctx.utt3, ctx.jfk]
    paths = [str(c.path) for c in clips if c.path is not None]
    out: dict[str, Any] = {}
    for label, value in (("default", None), ("one", "4")):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS")}
        if value is not None:
            env["OPENBLAS_THREAD_TIMEOUT"] = value
        done = subprocess.run(
            [sys.executable, "-c", BLAS_PROBE, ctx.model_path, str(ctx.reps(7, 3)), *paths],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env=env,
        )
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        out[label] = {c.name: measured[str(c.path)] for c in clips}
    log(f"BLAS threads: {out}")
    return out


# --- 2. cold request ----------------------------------------------------------------------

ONESHOT = r"""
import json, sys, time
t_enter = time.monotonic()
from faster_whisper import WhisperModel, decode_audio
t_import = time.monotonic()
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=0)
t_load = time.monotonic()
segments, info = model.transcribe(decode_audio(sys.argv[2]), beam_size=5, vad_filter=True)
text = " ".join(s.text.strip() for s in segments)
t_done = time.monotonic()
print(json.dumps({"enter": t_enter, "import": t_import, "load": t_load, "done": t_done,
                  "text": text}))
"""


def oneshot(model_path: str, audio: Path) -> dict[str, Any]:
    """The design the daemon replaces: one process per request."""
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", ONESHOT, model_path, str(audio)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    t_end = time.monotonic()
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "wall": t_end - t0,
        "interpreter_start": out["enter"] - t0,
        "imports": out["import"] - out["enter"],
        "model_load": out["load"] - out["import"],
        "transcription": out["done"] - out["load"],
        "exit": t_end - out["done"],
        "text": out["text"],
    }


def section_cold(ctx: Context) -> None:
    ctx.mark("2. cold request: socket activation vs process per request")
    d_def = ctx.daemon("default", DEFAULT)
    d_off = ctx.daemon("fastoff", FAST_OFF)
    _ = ctx.model
    reps = ctx.reps(3, 2)
    bare = []
    for _i in range(5):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.monotonic() - t0)
    out: dict[str, Any] = {"python_c_pass": stats(bare)}
    for clip in (ctx.utt3, ctx.jfk):
        assert clip.path is not None
        data = clip.path.read_bytes()
        cold, cold_off, single = [], [], []
        for rep in range(reps):
            cold.append(
                activated_request(
                    ctx.workdir, f"act-{clip.name}-{rep}", data, "file", DEFAULT, ctx.args.model
                )
            )
            cold_off.append(
                activated_request(
                    ctx.workdir, f"actoff-{clip.name}-{rep}", data, "file", FAST_OFF, ctx.args.model
                )
            )
            single.append(oneshot(ctx.model_path, clip.path))
            log(f"cold {clip.name} rep {rep + 1}/{reps}")
        warm = [transcribe(d_def.socket, data, "file")[0] for _ in range(ctx.reps(5, 3))]
        warm_off = [transcribe(d_off.socket, data, "file")[0] for _ in range(ctx.reps(5, 3))]
        # The same clip as whisperd-keys sends it: PCM, without timestamps (the fast path).
        pcm = clip.pcm16()
        warm_dictation = [
            transcribe(d_def.socket, pcm, "pcm", DICTATION_OPTIONS)[0]
            for _ in range(ctx.reps(5, 3))
        ]
        parts = {
            k: stats([s[k] for s in single])
            for k in ("interpreter_start", "imports", "model_load", "transcription", "exit")
        }
        component_sum = sum(
            parts[k]["median"]
            for k in ("interpreter_start", "imports", "model_load", "transcription")
        )
        cold_wall = stats([c["wall"] for c in cold])
        row = {
            "seconds": round(clip.seconds, 2),
            "cold_activated": cold_wall,
            "cold_activated_fastoff": stats([c["wall"] for c in cold_off]),
            "cold_daemon_timings": [c["result"]["timings"] for c in cold],
            "socket_activated": all(c["socket_activated"] for c in cold),
            "same_pid_as_launcher": all(c["pid"] == c["launcher_pid"] for c in cold),
            "process_per_request": stats([s["wall"] for s in single]),
            "components": parts,
            "component_sum": component_sum,
            "warm": stats(warm),
            "warm_fastoff": stats(warm_off),
            "warm_dictation": stats(warm_dictation),
            "cold_vs_components": cold_wall["median"] / component_sum,
            "per_request_vs_warm": med([s["wall"] for s in single]) / med(warm),
            "per_request_vs_warm_fastoff": med([s["wall"] for s in single]) / med(warm_off),
            "per_request_vs_warm_dictation": med([s["wall"] for s in single]) / med(warm_dictation),
            "cold_vs_warm": cold_wall["median"] / med(warm),
            "wer_cold": _wer(clip, cold[0]["result"]["text"]),
            "wer_process_per_request": _wer(clip, single[0]["text"]),
        }
        out[clip.name] = row
    ctx.results["cold"] = out


def _wer(item: Item, text: str) -> float | None:
    tally = WerTally()
    tally.add(item.reference, text)
    return tally.wer


# --- 3. dictation -------------------------------------------------------------------------


def section_dictation(ctx: Context) -> None:
    from bench.dictation import DictationBench

    ctx.mark("3. dictation latency (whisperd-keys service, real-time microphone double)")
    plan = {2: 6, 5: 8, 10: 5, 30: 4, 60: 3} if not ctx.quick else {2: 3, 5: 4, 10: 2, 30: 2, 60: 1}
    out: dict[str, Any] = {}
    # The same utterances cut 50 ms after their last word: a user who lets go of the key
    # the instant they stop speaking, so no draft can be ready (the worst case for drafts).
    at_end = {s: released_at_speech_end(ctx.dictation[s]) for s in (5, 30)}

    def measure(
        d: Daemon, lengths: dict[int, int], label: str, items: dict[int, Item] | None = None
    ) -> dict[str, Any]:
        bench = DictationBench(str(d.socket))
        try:
            bench.run(ctx.dictation[2].pcm16())  # warm-up (first session, imports)
            rows: dict[str, Any] = {}
            for seconds, reps in lengths.items():
                item = (items or ctx.dictation)[seconds]
                runs = []
                for _ in range(reps):
                    runs.append(bench.run(item.pcm16()))
                    time.sleep(0.2)
                tally = WerTally()
                for r in runs:
                    tally.add(item.reference, r["text"])
                rows[str(seconds)] = {
                    "reps": reps,
                    **{
                        k: stats([r[k] for r in runs])
                        for k in (
                            "handoff",
                            "typed",
                            "drain",
                            "reply",
                            "daemon_total",
                            "daemon_decode",
                            "typing",
                        )
                    },
                    "drafts_used": sum(r["draft"] for r in runs),
                    "trailing_pause": trailing_pause(item),
                    "chars": runs[0]["chars"],
                    "wer": tally.wer,
                    "text": runs[0]["text"],
                }
                log(
                    f"dictation {label} {seconds} s: handoff median "
                    f"{rows[str(seconds)]['handoff']['median'] * 1000:.0f} ms"
                )
            return rows
        finally:
            bench.close()

    out["default"] = measure(ctx.daemon("default", DEFAULT), plan, "default")
    few = {5: ctx.reps(4, 2), 30: ctx.reps(2, 1)}
    out["at_speech_end"] = measure(ctx.daemon("default", DEFAULT), few, "at speech end", at_end)
    out["no_drafts"] = measure(ctx.daemon("nodrafts", NO_DRAFTS), few, "no drafts")
    out["plain"] = measure(ctx.daemon("plain", PLAIN), few, "plain")
    ctx.results["dictation"] = out
    out["projection"] = projection(ctx)


def speech_end(item: Item) -> int:
    """The sample where the utterance's last word ends (the daemon's own pause test)."""
    from whisperd.audio import Levels

    levels = Levels()
    levels.add(item.audio)
    end = levels.speech_end(0, floor=0.0005)
    return item.audio.shape[0] if end is None else end


def trailing_pause(item: Item) -> float:
    return (item.audio.shape[0] - speech_end(item)) / material.SAMPLE_RATE


def released_at_speech_end(item: Item) -> Item:
    cut = min(item.audio.shape[0], speech_end(item) + int(0.05 * material.SAMPLE_RATE))
    return Item(f"{item.name}-at-end", item.audio[:cut], item.reference)


def projection(ctx: Context) -> dict[str, Any]:
    """In-process, whisperd-keys' options (without_timestamps): the regular call vs the
    unpadded fast path (whisperd.engine.fastpath), on the dictation utterances that fit a window.
    What the decode part of the dictation latency becomes once the engine uses the fast path
    (for the whole utterance, or for the tail left after the stream windows)."""
    from whisperd.engine.fastpath import transcribe_unpadded

    out: dict[str, Any] = {}
    for seconds in (2, 5, 10):
        item = ctx.dictation[seconds]
        audio = ctx.qaudio(item)
        regular, fast = [], []
        fell_back = 0
        text = ""
        ctx.inproc(item, beam_size=5, vad_filter=True, without_timestamps=True)
        for _ in range(ctx.reps(5, 3)):
            wall, regular_text = ctx.inproc(
                item, beam_size=5, vad_filter=True, without_timestamps=True
            )
            regular.append(wall)
            t0 = time.perf_counter()
            res = transcribe_unpadded(ctx.model, audio, beam_size=5, without_timestamps=True)
            spent = time.perf_counter() - t0
            if res is None:  # the quality guard refused: the engine runs the regular call
                fell_back += 1
                spent += wall
                text = regular_text
            else:
                text = res.text
            fast.append(spent)
        out[str(seconds)] = {
            "regular": stats(regular),
            "fastpath": stats(fast),
            "fell_back": fell_back,
            "runs": len(fast),
            "wer_fastpath": _wer(item, text),
        }
    return out


# --- 4. files -----------------------------------------------------------------------------


def whisperctl() -> list[str]:
    script = Path(sys.executable).parent / "whisperctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "whisperd.cli"]


def run_whisperctl(d: Daemon, paths: list[Path]) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            *whisperctl(),
            "--socket",
            str(d.socket),
            "--no-autostart",
            "transcribe",
            "--json",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    texts = [json.loads(line)["text"] for line in done.stdout.splitlines() if line.strip()]
    return wall, texts


def section_files(ctx: Context) -> None:
    ctx.mark("4. files: whisperctl transcribe vs in-process sequential")
    d_def = ctx.daemon("default", DEFAULT)
    d_off = ctx.daemon("fastoff", FAST_OFF)
    reps = ctx.reps(2, 1)
    out: dict[str, Any] = {}
    sets = {"short": ctx.files, "long": [ctx.long]}
    for label, items in sets.items():
        paths = [i.path for i in items if i.path is not None]
        if len(paths) != len(items):
            # espeak stand-in for the 60 s file: it has a path; recordings always do
            raise RuntimeError("every file needs a path")
        audio_seconds = sum(i.seconds for i in items)
        row: dict[str, Any] = {"files": len(items), "audio_seconds": round(audio_seconds, 1)}
        for kind in ("inproc", "whisperctl_default", "whisperctl_fastoff"):
            walls = []
            texts: list[str] = []
            for _ in range(reps):
                if kind == "inproc":
                    t0 = time.perf_counter()
                    texts = []
                    for p in paths:
                        segments, _ = ctx.model.transcribe(material.decode(p), **DAEMON_SETTINGS)
                        texts.append(" ".join(s.text.strip() for s in segments))
                    walls.append(time.perf_counter() - t0)
                else:
                    d = d_def if kind == "whisperctl_default" else d_off
                    wall, texts = run_whisperctl(d, paths)
                    walls.append(wall)
            tally = WerTally()
            for item, text in zip(items, texts, strict=True):
                tally.add(item.reference, text)
            row[kind] = {
                "wall": stats(walls),
                "audio_s_per_s": audio_seconds / med(walls),
                "wer": tally.wer,
            }
        out[label] = row
        log(
            f"files {label}: in-process {row['inproc']['audio_s_per_s']:.1f}, whisperctl "
            f"{row['whisperctl_default']['audio_s_per_s']:.1f} audio s/s"
        )
    ctx.results["files"] = out


# --- 5. memory ----------------------------------------------------------------------------


def section_memory(ctx: Context) -> None:
    ctx.mark("5. memory: whisperd RSS over requests; whisperd-keys idle; idle exit")
    total = ctx.args.requests or ctx.reps(1000, 200)
    keys_seconds = ctx.reps(30, 10)
    d = Daemon(ctx.workdir, "memory", DEFAULT, ctx.args.model)
    d.start(load=False)
    out: dict[str, Any] = {"requests": total}
    try:
        out["rss_started_kib"] = rss_kib(d.pid)
        with __import__("whisperd.client", fromlist=["Client"]).Client.connect(
            str(d.socket), timeout=300, autostart=False
        ) as client:
            client.load()
        out["rss_loaded_kib"] = rss_kib(d.pid)
        # whisperd-keys idle runs meanwhile in its own process (it only sleeps and polls)
        keys = subprocess.Popen(
            [sys.executable, "-m", "bench.keys_idle", str(keys_seconds), str(d.socket)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        pcm = ctx.dictation[2].pcm16()
        checkpoints = sorted({1, 10, 100, total // 4, total // 2, 3 * total // 4, total})
        samples = []
        walls = []
        t0 = time.monotonic()
        cpu0 = cpu_seconds(d.pid)
        for i in range(1, total + 1):
            wall, result = transcribe(d.socket, pcm, "pcm")
            walls.append(wall)
            if i in checkpoints:
                samples.append({"requests": i, **rss_kib(d.pid)})
        elapsed = time.monotonic() - t0
        out["daemon_cpu_per_request_ms"] = (cpu_seconds(d.pid) - cpu0) / total * 1000
        out["request_wall"] = {k: v for k, v in stats(walls).items() if k != "values"}
        out["elapsed"] = elapsed
        out["samples"] = samples
        by = {s["requests"]: s["VmRSS"] for s in samples}
        out["growth_after_first_kib"] = by[total] - by[1]
        out["growth_after_100_kib"] = by[total] - by[min(100, total)]
        out["status_requests_served"] = d.status().get("requests_served")
        keys_out, _ = keys.communicate(timeout=keys_seconds + 60)
        out["keys_idle"] = json.loads(keys_out.strip().splitlines()[-1])
        out["keys_idle"]["how"] = "DictationService with doubles (no /dev/input, /dev/uinput)"
    finally:
        d.stop()
    out["keys_real"] = try_real_keys()
    out["idle_exit"] = idle_exit(ctx)
    ctx.results["memory"] = out


def try_real_keys() -> dict[str, Any]:
    """Can the real whisperd-keys run here? (needs /dev/input and /dev/uinput)"""
    script = Path(sys.executable).parent / "whisperd-keys"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "whisperd.keys.main"]
    try:
        done = subprocess.run(argv + ["--layout", "us"], capture_output=True, text=True, timeout=10)
        return {
            "ran": False,
            "exit": done.returncode,
            "message": (done.stderr.strip().splitlines() or [""])[-1][:300],
            "dev_input": os.path.isdir("/dev/input"),
            "dev_uinput": os.path.exists("/dev/uinput"),
        }
    except subprocess.TimeoutExpired:
        return {"ran": True, "message": "whisperd-keys ran for 10 s (stopped)"}


def idle_exit(ctx: Context) -> dict[str, Any]:
    d = Daemon(ctx.workdir, "idle", DEFAULT, ctx.args.model, idle_timeout=2)
    d.start(load=False)
    pid = d.pid
    transcribe(d.socket, ctx.dictation[2].pcm16(), "pcm")
    closed = time.monotonic()
    assert d.process is not None
    try:
        d.process.wait(60)
        exited = True
    except subprocess.TimeoutExpired:
        exited = False
    after = time.monotonic() - closed
    leftovers = processes_mentioning(str(d.dir))
    result = {
        "idle_timeout": 2,
        "exited": exited,
        "exit_code": d.process.returncode,
        "seconds_after_last_request": round(after, 2),
        "process_gone": not alive(pid),
        "socket_gone": not d.socket.exists(),
        "leftover_processes": leftovers,
        "lock_file_left": os.path.exists(f"{d.socket}.lock"),
    }
    result["ok"] = bool(
        exited and result["process_gone"] and result["socket_gone"] and not leftovers
    )
    d.stop()
    return result


# --- 6. accuracy and levers ---------------------------------------------------------------


def section_accuracy(ctx: Context) -> None:
    ctx.mark("6. word error rate and levers")
    d_def = ctx.daemon("default", DEFAULT)
    d_off = ctx.daemon("fastoff", FAST_OFF)
    d_t1 = ctx.daemon("threads1", {"cpu_threads": 1}, warm=ctx.utt3)
    d_t2 = ctx.daemon("threads2", {"cpu_threads": 2}, warm=ctx.utt3)
    items = ctx.wer_espeak + ctx.wer_recordings

    def inproc(**options: Any) -> Callable[[Item], str]:
        def run(item: Item) -> str:
            return ctx.inproc(item, **options)[1]

        return run

    def daemon(d: Daemon, options: dict[str, Any] | None = None) -> Callable[[Item], str]:
        def run(item: Item) -> str:
            return str(transcribe(d.socket, item.pcm16(), "pcm", options)[1]["text"])

        return run

    configs: list[tuple[str, str, Callable[[Item], str]]] = [
        (
            "inproc_defaults",
            "in-process faster-whisper, its default settings (beam 5, no VAD)",
            inproc(),
        ),
        (
            "inproc_daemon_settings",
            "in-process, daemon settings (beam 5, VAD)",
            inproc(**DAEMON_SETTINGS),
        ),
        (
            "daemon_default",
            "whisperd default, PCM stream (the fast path is on for streams)",
            daemon(d_def),
        ),
        ("daemon_fastoff", "whisperd, fast path off", daemon(d_off)),
        (
            "dictation_options",
            "whisperd default + without_timestamps (whisperd-keys' request)",
            daemon(d_def, DICTATION_OPTIONS),
        ),
        ("beam1", "lever: beam 1", daemon(d_def, {"beam_size": 1})),
        (
            "beam1_wt",
            "lever: beam 1 + without_timestamps",
            daemon(d_def, {"beam_size": 1, "without_timestamps": True}),
        ),
        ("threads1", "lever: cpu_threads 1", daemon(d_t1)),
        ("threads2", "lever: cpu_threads 2", daemon(d_t2)),
    ]
    ctx.inproc(ctx.utt3)
    out: dict[str, Any] = {}
    for key, label, run in configs:
        esp, rec, total = WerTally(), WerTally(), WerTally()
        times_short: list[float] = []
        started = time.perf_counter()
        worst: list[tuple[float, str, str]] = []
        texts: dict[str, str] = {}
        for item in items:
            t0 = time.perf_counter()
            text = run(item)
            dt = time.perf_counter() - t0
            (esp if item.source == "espeak" else rec).add(item.reference, text)
            total.add(item.reference, text)
            if item.source == "espeak":
                times_short.append(dt)
            e, n = material.errors(item.reference, text)
            if e:
                worst.append((e / max(n, 1), item.name, text))
                texts[item.name] = text
        wall = time.perf_counter() - started
        out[key] = {
            "label": label,
            "wall": wall,
            "espeak_median_s": med(times_short),
            "wer_espeak": esp.wer,
            "wer_recordings": rec.wer,
            "wer": total.wer,
            "errors": total.errors,
            "words": total.words,
            "clips_with_errors": [w[1] for w in sorted(worst, reverse=True)],
            "texts_with_errors": texts,
        }
        log(
            f"{key}: {wall:.1f} s, WER {total.wer:.3%} (espeak {esp.wer:.3%}, recordings "
            f"{(rec.wer or 0):.3%})"
        )
    ctx.results["accuracy"] = {
        "configs": out,
        "items": len(items),
        "references": {i.name: i.reference for i in items},
        "audio_seconds": round(sum(i.seconds for i in items), 1),
    }


# --- main ---------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[Context], None]] = {
    "warm": section_warm,
    "accuracy": section_accuracy,
    "files": section_files,
    "dictation": section_dictation,
    "memory": section_memory,
    "cold": section_cold,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a few minutes)")
    p.add_argument(
        "--model",
        default=None,
        help="model name or path for whisperd and in-process (default: the "
        "daemon's default, the bundled tiny.en)",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    p.add_argument(
        "--requests",
        type=int,
        default=0,
        help="requests for the memory test (default 1000, --quick 200)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="add the sections run to the existing results file instead of replacing it",
    )
    p.add_argument(
        "--out",
        default=str(HERE / "results"),
        help="output path without extension (default bench/results)",
    )
    return p.parse_args(argv)


def save(ctx: Context, out: Path, started: float) -> None:
    """Write both files (after every section too: an interrupted run keeps what it has)."""
    from bench.report import render

    run = ctx.results["run"]
    run["load_after"] = list(os.getloadavg())
    run["load_by_section"] = ctx.loads
    run["minutes"] = round((time.time() - started) / 60, 1)
    run["model_path"] = getattr(ctx, "model_path", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(ctx.results, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(render(ctx.results))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        print(
            "python -m bench needs espeak-ng and sox (apt install espeak-ng sox)", file=sys.stderr
        )
        return 2
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so the daemons we started are stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    started = time.time()
    out = Path(args.out)
    workdir = Path(tempfile.mkdtemp(prefix="wbench-"))
    ctx = Context(args, workdir)
    if args.merge and out.with_suffix(".json").exists():
        # add these sections to an earlier run's results (same machine, other sections)
        ctx.results = json.loads(out.with_suffix(".json").read_text())
        ctx.loads = ctx.results.get("run", {}).get("load_by_section", [])
        earlier = ctx.results.get("run", {})
        ctx.results.setdefault("runs", []).append(earlier)
    ctx.results["machine"] = machine()
    ctx.results["run"] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick,
        "model": args.model or "default (bundled tiny.en)",
        "sections": chosen,
        "load_before": list(os.getloadavg()),
    }
    try:
        build_material(ctx)
        for name in SECTIONS:  # fixed order, whatever order was asked
            if name in chosen:
                SECTIONS[name](ctx)
                save(ctx, out, started)
    finally:
        ctx.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    save(ctx, out, started)
    log(
        f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')} in "
        f"{ctx.results['run']['minutes']} min"
    )
    print(out.with_suffix(".md").read_text())
    return 0
