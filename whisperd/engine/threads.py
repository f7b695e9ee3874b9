"""How many CPU threads the model decodes with, when ``cpu_threads = 0`` (automatic).

CTranslate2's own choice (as many threads as CPUs, at most 4) is not the fastest
everywhere. More threads halve the encoder's time, but each decoder step is a row of small
matrix products whose threads must meet after every one: on a 2-vCPU KVM guest (AMD EPYC)
two threads made a beam-5 decoder step twice as slow (9.5 against 4.5 ms), and a live
piece (30 s window, 30-60 steps) 20-50 % slower; on a 2-core machine two threads were
twice as fast for files (docs/benchmarks.md). No rule on the CPU's name predicts which, so
whisperd measures it: the first time a model is loaded on a machine, it times the encoder
and a decoder step with CTranslate2's default and with one thread, keeps the faster for a
typical decode, and remembers the choice in its cache directory (a few seconds, once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("whisperd.engine")

CACHE_NAME = "cpu-threads.json"
MAX_ENTRIES = 32  # machines x models a cache remembers; the oldest go first
# A typical decode: the 30 s window's encoder and 50 beam-search steps (a live piece's
# forced context and its new words; a 30 s file window holds 60-90 tokens).
TYPICAL_STEPS = 50
SHORT_STEPS, LONG_STEPS = 4, 24
# One thread must beat the default by this much: a measurement's noise must not move a
# machine off CTranslate2's own choice.
MARGIN = 0.9
PROBE_FRAMES = 1000  # 10 s of mel frames
DEFAULT, ONE = 0, 1  # the two choices: CTranslate2's default, and one thread


@dataclass(frozen=True)
class Timing:
    """What one model instance measured: the 30 s encoder, one decoder step (seconds)."""

    encode: float
    step: float

    @property
    def typical(self) -> float:
        return self.encode + TYPICAL_STEPS * self.step


def pick(default: Timing, one: Timing) -> int:
    """The faster choice for a typical decode: ONE only when clearly faster."""
    return ONE if one.typical < MARGIN * default.typical else DEFAULT


def probe(ct2_model: Any, prompt: list[int], eot: int, n_mels: int, repeats: int = 1) -> Timing:
    """Time ``ct2_model`` (a ``ctranslate2.models.Whisper``): the encoder (on a silent
    10 s window, as three for 30 s: it grows about linearly at these lengths), and the
    decoder's cost per beam-5 step (the end of text suppressed, so the decode runs as long
    as asked), the best of ``repeats`` after a warm-up. About 0.3-0.5 s."""
    import ctranslate2  # deferred: heavy import
    import numpy as np

    features = ctranslate2.StorageView.from_array(np.zeros((1, n_mels, PROBE_FRAMES), np.float32))

    def steps(encoded: Any, count: int) -> tuple[float, int]:
        started = time.perf_counter()
        result = ct2_model.generate(
            encoded,
            [prompt],
            beam_size=5,
            # CTranslate2 decodes at most max_length // 2 steps (engine/decoding.py)
            max_length=2 * (len(prompt) + count),
            suppress_tokens=[eot],
            suppress_blank=False,
        )[0]
        return time.perf_counter() - started, len(result.sequences_ids[0])

    encodes: list[float] = []
    per_step: list[float] = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        encoded = ct2_model.encode(features, to_cpu=False)
        encode = time.perf_counter() - started
        short, short_n = steps(encoded, SHORT_STEPS)
        long, long_n = steps(encoded, LONG_STEPS)
        if attempt:  # the first round warms the caches and the thread pool
            encodes.append(encode * 3000 / PROBE_FRAMES)
            per_step.append(max(long - short, 0.0) / max(long_n - short_n, 1))
    return Timing(min(encodes), min(per_step))


def cache_dir() -> Path:
    """$CACHE_DIRECTORY (systemd's CacheDirectory=whisperd), else $XDG_CACHE_HOME/whisperd."""
    given = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "whisperd"


def machine_key(model_path: str, compute_type: str) -> dict[str, Any]:
    """What the measurement depends on: this CPU (name, count), the model's files, the
    compute type and CTranslate2's version."""
    import ctranslate2

    weights = Path(model_path) / "model.bin"
    try:
        stat = weights.stat()
        files: list[int] = [stat.st_size, stat.st_mtime_ns]
    except OSError:
        files = []
    return {
        "cpu": _cpu_name(),
        "cpus": len(os.sched_getaffinity(0)),
        "model": str(Path(model_path).resolve()),
        "files": files,
        "compute_type": compute_type,
        "ctranslate2": str(ctranslate2.__version__),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown"


class ThreadCache:
    """The remembered choices: ``{"entries": {hash: {"threads": 0|1, ...}}}`` in one JSON
    file. A missing, unreadable or malformed file is an empty cache (measured again); a
    cache that cannot be written costs a measurement at each load, nothing else."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CACHE_NAME

    @staticmethod
    def digest(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

    def _entries(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        entries = data.get("entries") if isinstance(data, dict) else None
        return entries if isinstance(entries, dict) else {}

    def lookup(self, key: dict[str, Any]) -> int | None:
        entry = self._entries().get(self.digest(key))
        threads = entry.get("threads") if isinstance(entry, dict) else None
        return threads if threads in (DEFAULT, ONE) and type(threads) is int else None

    def store(self, key: dict[str, Any], threads: int, measured: dict[str, Timing]) -> None:
        entries = self._entries()
        entries[self.digest(key)] = {
            "threads": threads,
            "key": key,
            "measured": {name: asdict(t) for name, t in measured.items()},
            "at": time.time(),
        }
        newest = sorted(entries.items(), key=lambda kv: _when(kv[1]))[-MAX_ENTRIES:]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps({"entries": dict(newest)}, indent=1))
            partial.replace(self.path)
        except OSError as exc:
            log.warning("cannot remember the CPU thread choice in %s: %s", self.path, exc)


def _when(entry: Any) -> float:
    at = entry.get("at") if isinstance(entry, dict) else None
    return float(at) if isinstance(at, (int, float)) else 0.0


def choose(
    cache: ThreadCache,
    key: dict[str, Any],
    make: Callable[[int], Any],
    measure: Callable[[Any], Timing],
) -> tuple[Any, int]:
    """The model to serve with and its ``cpu_threads`` (DEFAULT or ONE): the cached choice
    when there is one, else both measured (``make(threads)`` loads a model, ``measure``
    times it) and the choice remembered. Only the chosen model is kept."""
    cached = cache.lookup(key)
    if cached is not None:
        return make(cached), cached
    log.info("measuring which CPU thread count decodes faster on this machine (once)")
    # One model in memory at a time: a large model twice could exhaust a small machine.
    default = measure(make(DEFAULT))
    one_model = make(ONE)
    one = measure(one_model)
    threads = pick(default, one)
    log.info(
        "CPU threads: %s (a typical decode: default %.0f ms, one thread %.0f ms)",
        "1" if threads == ONE else "CTranslate2's default",
        default.typical * 1000,
        one.typical * 1000,
    )
    cache.store(key, threads, {"default": default, "one": one})
    if threads == ONE:
        return one_model, ONE
    del one_model
    return make(DEFAULT), DEFAULT


def measure_whisper(model: Any) -> Timing:
    """``probe`` for a faster-whisper ``WhisperModel``: its CTranslate2 model, with the
    start of an English transcript without timestamps as the prompt."""
    from faster_whisper.tokenizer import Tokenizer

    multilingual = bool(model.model.is_multilingual)
    tokenizer = Tokenizer(
        model.hf_tokenizer, multilingual, task="transcribe", language="en" if multilingual else None
    )
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    return probe(model.model, prompt, tokenizer.eot, int(model.model.n_mels))


def load_whisper(path: str, device: str, compute_type: str, cpu_threads: int) -> tuple[Any, int]:
    """A faster-whisper ``WhisperModel`` and the ``cpu_threads`` it runs with: as
    configured, or, for 0 (automatic) on a CPU with more than one core, the measured
    choice (``choose``). Errors of loading propagate (RuntimeError, ValueError, OSError)."""
    from faster_whisper import WhisperModel

    def make(threads: int) -> Any:
        return WhisperModel(
            path,
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            local_files_only=True,
        )

    if cpu_threads != 0 or device != "cpu" or len(os.sched_getaffinity(0)) < 2:
        return make(cpu_threads), cpu_threads
    return choose(ThreadCache(cache_dir()), machine_key(path, compute_type), make, measure_whisper)
