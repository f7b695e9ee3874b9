"""Packed short files against one ``transcribe`` call per file, in-process.

    OPENBLAS_THREAD_TIMEOUT=4 .venv/bin/python -m bench.packing
    OPENBLAS_THREAD_TIMEOUT=4 .venv/bin/python -m bench.packing --gap 1.0 1.5 2.0 --window 24 28

The material is what ``bench/suite.py`` sends to ``whisperctl transcribe`` (20 espeak
files of 2-6 s, ``sentence_set(20, offset=30, name="file")``) plus a few real recordings
from the shared audio folder (``--no-recordings`` leaves them out). Both sides use the
daemon's settings (beam 5, VAD on) and the bundled tiny.en, int8, on the CPU.

``transcribe_single`` (one plain ``transcribe`` call per clip) is the per-file baseline
and ``transcribe_clips`` the packing with its fallbacks done; the daemon itself packs
through ``Engine.transcribe_many`` (``whisperd/engine/packing.py``).

Measured with ``python -m bench.packing --more --reps 3`` (bundled tiny.en, int8, 2-core
CPU, OPENBLAS_NUM_THREADS=1 at the time, beam 5, VAD on; best of 3; gap 1.5 s, window 28 s)::

    material (files, audio)          per file: wall  audio s/s  WER    calls
                                     packed:   wall  audio s/s  WER    calls  fallbacks
    espeak 2-6 s (20, 68.3 s)         10.15 s   6.7  11.5 %  20
                                       3.52 s  19.4   5.0 %   4      0    2.9x
    + jfk, stereo L/R, mit_a (24, 98.3 s)
                                      12.23 s   8.0   8.5 %  24
                                       4.82 s  20.4   3.7 %   5      0    2.5x
    espeak, 60 files (60, 211.7 s)    30.40 s   7.0  13.3 %  60
                                      10.94 s  19.4   8.6 %  12      0    2.8x

Packed WER was below per-file WER in every run and setting (the neighbouring clips give
the tiny model context); the bench's espeak audio is dithered by sox, so single figures
move by a few words between runs. One 30 s encoder pass costs 0.34 s here, a per-file
call about 0.5 s; a packed window of five or six clips about 0.9 s.

Tuning (``--gap 1.0 1.25 1.5 2.0 --window 28 30``, two runs, 60 files): a 1.0 s gap is
as fast per window, but whole-second timestamps then reach the next clip (2-7 fallbacks
per run, 1.8x); 1.25-2.0 s gave no fallbacks, 2.0 s one window more (13) and 10 % slower:
1.5 s it is. A 30 s window put the last clip at the window's end, where segments
straddled (up to 4 fallbacks) and decoding slowed (1.4-1.8x on the 20 files); 28 s
leaves Whisper 2 s of padding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench import material
from bench.material import Item, WerTally
from whisperd.engine import packing
from whisperd.engine.result import Transcription, segment
from whisperd.engine.samples import duration_of

BEAM_SIZE = 5


def transcribe_single(
    model: Any,
    audio: material.Audio,
    *,
    beam_size: int = 5,
    language: str | None = None,
    initial_prompt: str | None = None,
    use_vad: bool = True,
) -> Transcription:
    """One clip, one regular ``transcribe`` call (the per-file baseline and the fallback)."""
    segments, info = model.transcribe(
        audio,
        beam_size=beam_size,
        language=language,
        vad_filter=use_vad,
        initial_prompt=initial_prompt,
    )
    items = [segment(s.start, s.end, s.text) for s in segments]
    return Transcription.of_segments(items, info.language, duration_of(audio.size), "single")


def transcribe_clips(
    model: Any,
    audios: Sequence[material.Audio],
    *,
    beam_size: int = 5,
    language: str | None = None,
    initial_prompt: str | None = None,
    use_vad: bool = True,
    window_seconds: float = packing.DEFAULT_WINDOW_SECONDS,
    gap_seconds: float = packing.DEFAULT_GAP_SECONDS,
    single: Callable[[int], Transcription] | None = None,
) -> tuple[list[Transcription], packing.PackOutcome]:
    """Packed transcription with the fallbacks done: every clip gets a result.

    ``single(i)`` transcribes clip ``i`` alone; by default one ``transcribe`` call with
    the VAD, like a per-file request. ``PackOutcome.model_calls`` counts the fallbacks too.
    """

    def alone(index: int) -> Transcription:
        return transcribe_single(
            model,
            audios[index],
            beam_size=beam_size,
            language=language,
            initial_prompt=initial_prompt,
            use_vad=use_vad,
        )

    outcome = packing.transcribe_packed(
        model,
        audios,
        beam_size=beam_size,
        language=language,
        initial_prompt=initial_prompt,
        use_vad=use_vad,
        window_seconds=window_seconds,
        gap_seconds=gap_seconds,
    )
    results: list[Transcription] = []
    for index, result in enumerate(outcome.results):
        if result is None:
            result = (single or alone)(index)
            outcome.model_calls += 1
        results.append(result)
    return results, outcome


@contextmanager
def counting_encoder(model: Any) -> Iterator[list[int]]:
    """Count encoder passes (30 s windows) through ``model.encode``."""
    count = [0]
    original = model.encode

    def encode(features: Any) -> Any:
        count[0] += 1
        return original(features)

    model.encode = encode
    try:
        yield count
    finally:
        del model.encode  # back to the class's method


def daemon_samples(item: Item) -> material.Audio:
    """The samples the daemon sees for a 16-bit file."""
    return np.frombuffer(item.pcm16(), dtype="<i2").astype(np.float32) / 32768.0


def per_file(model: Any, audios: list[material.Audio]) -> list[Transcription]:
    return [transcribe_single(model, a, beam_size=BEAM_SIZE) for a in audios]


def measure(
    items: list[Item],
    model: Any,
    gap_seconds: float = packing.DEFAULT_GAP_SECONDS,
    window_seconds: float = packing.DEFAULT_WINDOW_SECONDS,
    baseline: bool = True,
) -> dict[str, Any]:
    """Wall time, audio s per wall s, model calls, encoder passes, fallbacks and WER for
    per-file (one ``transcribe`` each) and packed transcription of ``items``."""
    audios = [daemon_samples(i) for i in items]
    audio_seconds = sum(a.size for a in audios) / material.SAMPLE_RATE
    report: dict[str, Any] = {
        "files": len(items),
        "audio_seconds": round(audio_seconds, 2),
        "gap_seconds": gap_seconds,
        "window_seconds": window_seconds,
    }

    def summary(results: list[Transcription], wall: float, calls: int, passes: int) -> Any:
        tally = WerTally()
        for item, result in zip(items, results, strict=True):
            tally.add(item.reference, result.text)
        return {
            "wall_s": round(wall, 2),
            "audio_s_per_wall_s": round(audio_seconds / wall, 2),
            "model_calls": calls,
            "encoder_passes": passes,
            "wer": round(tally.wer or 0.0, 4),
            "word_errors": tally.errors,
            "words": tally.words,
        }

    if baseline:
        with counting_encoder(model) as passes:
            started = time.perf_counter()
            single = per_file(model, audios)
            wall = time.perf_counter() - started
        report["per_file"] = summary(single, wall, len(audios), passes[0])
        report["per_file_texts"] = [r.text for r in single]
    with counting_encoder(model) as passes:
        started = time.perf_counter()
        packed, outcome = transcribe_clips(
            model,
            audios,
            beam_size=BEAM_SIZE,
            window_seconds=window_seconds,
            gap_seconds=gap_seconds,
        )
        wall = time.perf_counter() - started
    report["packed"] = summary(packed, wall, outcome.model_calls, passes[0])
    report["packed"].update(
        {
            "windows": outcome.windows,
            "fallbacks": len(outcome.doubtful) + len(outcome.alone),
            "doubtful": {items[i].name: why for i, why in sorted(outcome.doubtful.items())},
        }
    )
    report["packed_texts"] = [r.text for r in packed]
    report["names"] = [item.name for item in items]
    if baseline:
        compare(report)
    return report


def compare(report: dict[str, Any]) -> None:
    """Speed-up and the files whose packed words differ from the per-file words."""
    report["differs"] = [
        {"name": name, "per_file": a, "packed": b}
        for name, a, b in zip(
            report["names"], report["per_file_texts"], report["packed_texts"], strict=True
        )
        if material.normalize(a) != material.normalize(b)
    ]
    report["speedup"] = round(report["per_file"]["wall_s"] / report["packed"]["wall_s"], 2)


def real_clips() -> list[Item]:
    """Real recordings short enough to pack (the long mit_b/mit_full are left out)."""
    keep = {"jfk", "stereo_left", "stereo_right", "mit_a"}
    return [item for item in material.recordings() if item.name in keep]


def load_model() -> Any:
    from faster_whisper import WhisperModel

    from whisperd.engine import resolve_model

    return WhisperModel(resolve_model(None).path, device="cpu", compute_type="int8", cpu_threads=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap", type=float, nargs="+", default=[packing.DEFAULT_GAP_SECONDS])
    parser.add_argument("--window", type=float, nargs="+", default=[packing.DEFAULT_WINDOW_SECONDS])
    parser.add_argument("--no-recordings", action="store_true")
    parser.add_argument(
        "--more", action="store_true", help="also 60 espeak files (more words, for tuning)"
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=1,
        help="repetitions (the best wall time is kept, on both sides)",
    )
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args(argv)
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT") != "4":
        print("note: the daemon runs with OPENBLAS_THREAD_TIMEOUT=4; set it", file=sys.stderr)
    model = load_model()
    with tempfile.TemporaryDirectory(prefix="whisperd-packing-") as tmp:
        workdir = Path(tmp)
        gen = material.Generator(workdir)
        sets = {"espeak": gen.sentence_set(20, offset=30, name="file", min_s=2.0, max_s=6.0)}
        if not args.no_recordings:
            sets["espeak+real"] = sets["espeak"] + real_clips()
        if args.more:
            # Other sentences, voices and speeds: 600 words instead of 200, so that the
            # tuning is not decided by the tiny model's luck on a handful of words.
            extra = [
                gen.sentence_set(20, offset=o, name=f"o{o}_", min_s=2.0, max_s=6.0) for o in (0, 50)
            ]
            sets["espeak60"] = sets["espeak"] + extra[0] + extra[1]
        # Warm the model and the VAD so the first measurement does not pay for them.
        transcribe_single(model, sets["espeak"][0].audio, beam_size=BEAM_SIZE)
        reports = []
        for name, items in sets.items():
            base: dict[str, Any] | None = None
            for window in args.window:
                for gap in args.gap:
                    # The per-file side is measured with the first setting only (it does
                    # not depend on the packing), as often as the packed side.
                    first = base is None
                    best: dict[str, Any] | None = None
                    for _ in range(args.reps):
                        r = measure(items, model, gap, window, baseline=first)
                        if first and (
                            base is None or r["per_file"]["wall_s"] < base["per_file"]["wall_s"]
                        ):
                            base = {k: r[k] for k in ("per_file", "per_file_texts")}
                        if best is None or r["packed"]["wall_s"] < best["packed"]["wall_s"]:
                            best = r
                    assert best is not None and base is not None
                    best.update(base, set=name)
                    compare(best)
                    reports.append(best)
                    print(json.dumps(_brief(best)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))
    return 0


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("set", "files", "audio_seconds", "gap_seconds", "window_seconds", "speedup")
    out = {k: report[k] for k in keys if k in report}
    for side in ("per_file", "packed"):
        if side in report:
            out[side] = {k: v for k, v in report[side].items() if k != "doubtful"}
    out["doubtful"] = report["packed"]["doubtful"]
    out["differs"] = report.get("differs", [])
    return out


if __name__ == "__main__":
    sys.exit(main())
