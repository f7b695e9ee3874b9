"""How many CPU threads the model decodes with, when ``cpu_threads = 0`` (automatic).

CTranslate2's own choice (as many threads as CPUs, at most 4) is not the fastest
everywhere. More threads halve the encoder's time, but each decoder step is a row of small
matrix products whose threads must meet after every one: on a 2-vCPU KVM guest (AMD EPYC)
two threads made a beam-5 decoder step twice as slow (9.5 against 4.5 ms), and a live
piece (30 s window, 30-60 steps) 20-50 % slower; on a 2-core machine two threads were
twice as fast for files (docs/benchmarks.md). No rule on the CPU's name predicts which, so
whisperd measures it: the first time a model is loaded on a machine, it times the encoder
and a decoder step with one thread and with CTranslate2's default, keeps the faster for a
typical decode, and remembers the choice in its cache directory (a few seconds, once).
Where the encoder is faster with the default and a step with one thread, the third choice
takes both: the encoder on an instance with the default, the decoder on one with a single
thread (``split.py``), when a second copy of the weights fits in memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from whisperd.engine.model import release_free_heap
from whisperd.engine.split import SplitWhisper, memory_available, room_for_second_copy

log = logging.getLogger("whisperd.engine")

CACHE_NAME = "cpu-threads.json"
MAX_CACHE_BYTES = 64 * 1024  # a bigger file is not ours: ignored (and measured again)
MAX_ENTRIES = 32  # machines x models x beam sizes a cache remembers; the oldest go first
# A typical decode: the 30 s window's encoder and 50 beam-search steps (a live piece's
# forced context and its new words; a 30 s file window holds 60-90 tokens).
TYPICAL_STEPS = 50
SHORT_STEPS, LONG_STEPS = 4, 24  # new tokens asked of the two timed decodes
# One thread must beat the default by this much. The first load often overlaps other
# work (a recording, a file being decoded), which slows many threads more than one: a
# measurement's noise must not move a machine off CTranslate2's own choice.
MARGIN = 0.8
REPEATS = 2  # timed rounds after a warm-up; the best of them counts
PROBE_FRAMES = 3000  # Whisper's 30 s window, in mel frames
DEFAULT, ONE = 0, 1  # CTranslate2's default, and one thread
SPLIT = -1  # the encoder with the default, the decoder with one thread (split.py)
CHOICES = (DEFAULT, ONE, SPLIT)


@dataclass(frozen=True)
class Timing:
    """What one model instance measured: the 30 s encoder, one decoder step (seconds)."""

    encode: float
    step: float

    @property
    def typical(self) -> float:
        return self.encode + TYPICAL_STEPS * self.step


def split_timing(default: Timing, one: Timing) -> Timing:
    """What the split (SPLIT) takes: the default's encoder, one thread's steps."""
    return Timing(default.encode, one.step)


def pick(default: Timing, one: Timing, split_allowed: bool = False) -> int:
    """The fastest choice for a typical decode: ONE only when clearly faster than the
    default; SPLIT (a second instance in memory) only when allowed and clearly faster
    than the choice that would serve without it. The split's time is estimated from
    the two measurements (the default's encoder, one thread's steps): the instances
    are the same as those measured, and the encoder's output is handed over as it is."""
    alone = ONE if one.typical < MARGIN * default.typical else DEFAULT
    served = one if alone == ONE else default
    if split_allowed and split_timing(default, one).typical < MARGIN * served.typical:
        return SPLIT
    return alone


def probe(ct2_model: Any, prompt: list[int], eot: int, n_mels: int, beam_size: int = 5) -> Timing:
    """Time ``ct2_model`` (a ``ctranslate2.models.Whisper``): the encoder on a silent
    30 s window (a shorter one is no guide: its attention is cheaper than in proportion,
    and 2 threads encoded 10 s slower than 1 where they encoded 30 s in half the time),
    and the decoder's cost per step at ``beam_size`` (the end of text suppressed, so a
    decode runs as long as asked), the best of REPEATS rounds after a warm-up. About 1 s
    with tiny.en; more with a larger model."""
    import ctranslate2  # deferred: heavy import
    import numpy as np

    features = ctranslate2.StorageView.from_array(np.zeros((1, n_mels, PROBE_FRAMES), np.float32))

    def steps(encoded: Any, new_tokens: int) -> tuple[float, int]:
        started = time.perf_counter()
        result = ct2_model.generate(
            encoded,
            [prompt],
            beam_size=beam_size,
            # at most max_length // 2 steps are decoded (engine/decoding.py): at least
            # ``new_tokens`` here; the output's own length is what the step cost divides
            max_length=2 * (len(prompt) + new_tokens),
            suppress_tokens=[eot],
            suppress_blank=False,
        )[0]
        return time.perf_counter() - started, len(result.sequences_ids[0])

    encodes: list[float] = []
    per_step: list[float] = []
    for attempt in range(REPEATS + 1):
        started = time.perf_counter()
        encoded = ct2_model.encode(features, to_cpu=False)
        encode = time.perf_counter() - started
        short, short_n = steps(encoded, SHORT_STEPS)
        long, long_n = steps(encoded, LONG_STEPS)
        if long_n <= short_n:
            raise ValueError(f"the probe decoded {short_n} then {long_n} tokens")
        if attempt:  # the first round warms the caches and the thread pool
            encodes.append(encode)
            per_step.append(max(long - short, 0.0) / (long_n - short_n))
    return Timing(min(encodes), min(per_step))


def cache_dir() -> Path:
    """$CACHE_DIRECTORY (systemd's CacheDirectory=whisperd), else $XDG_CACHE_HOME/whisperd."""
    given = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "whisperd"


def machine_key(model_path: str, compute_type: str, beam_size: int) -> dict[str, Any]:
    """What the measurement depends on: this CPU (name, count), the model's files, the
    compute type, the beam size and CTranslate2's version."""
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
        "beam_size": beam_size,
        "ctranslate2": str(ctranslate2.__version__),
        # what was chosen among: a choice made before SPLIT existed is measured again
        "choices": len(CHOICES),
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
    """The remembered measurements, in one JSON file: ``{"entries": {hash: {"threads":
    choice, "measured": {"default": timing, "one": timing}, "at": time, ...}}}``. A
    missing, unreadable, oversized or malformed file, or a malformed entry, counts as
    nothing remembered (measured again); a cache that cannot be written costs a
    measurement at each load, nothing else. Written whole to a fresh temporary file and
    renamed over the old one: concurrent writers never leave a mixed file (the last one
    wins)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / CACHE_NAME

    @staticmethod
    def digest(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

    def _entries(self) -> dict[str, dict[str, Any]]:
        try:
            with open(self.path, "rb") as file:
                raw = file.read(MAX_CACHE_BYTES + 1)
            data = json.loads(raw) if len(raw) <= MAX_CACHE_BYTES else None
        except (OSError, ValueError, RecursionError):
            return {}
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            return {}
        return {k: e for k, e in entries.items() if _valid(e)}

    def lookup(self, key: dict[str, Any]) -> int | None:
        entry = self._entries().get(self.digest(key))
        return None if entry is None else int(entry["threads"])

    def timings(self, key: dict[str, Any]) -> tuple[Timing, Timing] | None:
        """The default's and one thread's timings remembered for ``key``; None when
        there are none, or they are malformed."""
        entry = self._entries().get(self.digest(key))
        measured = entry.get("measured") if entry is not None else None
        if not isinstance(measured, dict):
            return None
        pair = tuple(_timing(measured.get(name)) for name in ("default", "one"))
        default, one = pair
        return None if default is None or one is None else (default, one)

    def store(self, key: dict[str, Any], threads: int, measured: dict[str, Timing]) -> None:
        entries = self._entries()
        entries[self.digest(key)] = {
            "threads": threads,
            "key": key,
            "measured": {name: asdict(t) for name, t in measured.items()},
            "at": time.time(),
        }
        newest = sorted(entries.items(), key=lambda kv: float(kv[1]["at"]))[-MAX_ENTRIES:]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=self.directory, prefix="cpu-threads.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump({"entries": dict(newest)}, file, indent=1)
                os.replace(partial, self.path)
            except BaseException:
                os.unlink(partial)
                raise
        except OSError as exc:
            log.warning("cannot remember the CPU thread choice in %s: %s", self.path, exc)


def _timing(value: Any) -> Timing | None:
    """A remembered timing: two finite, non-negative numbers of seconds."""
    if not isinstance(value, dict):
        return None
    encode, step = _seconds(value.get("encode")), _seconds(value.get("step"))
    return None if encode is None or step is None else Timing(encode, step)


def _seconds(value: Any) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer of 400 digits
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _valid(entry: Any) -> bool:
    """An entry this code wrote: a choice of CHOICES and a finite time."""
    if not isinstance(entry, dict):
        return False
    threads, at = entry.get("threads"), entry.get("at")
    if type(threads) is not int or threads not in CHOICES:
        return False
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return False
    try:
        return math.isfinite(float(at))
    except OverflowError:  # an integer of 400 digits
        return False


CHOICE_NAMES = {
    DEFAULT: "CTranslate2's default",
    ONE: "1",
    SPLIT: "CTranslate2's default for the encoder, 1 for the decoder",
}


def choose(
    cache: ThreadCache,
    key: dict[str, Any],
    make: Callable[[int], Any],
    measure: Callable[[Any], Timing],
    split: Callable[[Any], Any] | None = None,
) -> tuple[Any, int]:
    """The model to serve with and its choice (DEFAULT, ONE or SPLIT). ``make(threads)``
    loads a model with DEFAULT or ONE, ``measure`` times it; ``split``, given when a
    second instance fits in memory now, turns a default model into a SPLIT one (it loads
    the one-thread instance beside it). Remembered timings are picked from again at
    each load, so whether the split fits is decided with the memory of the moment;
    otherwise both thread counts are measured and remembered. One model in memory while
    measuring (a large model twice could exhaust a small machine): one thread is
    measured first and dropped, so the default, kept when it wins (the common case on
    machines with real cores), is loaded once. Errors of ``make`` (loading) propagate as
    they are, errors of ``measure`` as MeasureFailed; nothing is remembered then."""
    remembered = cache.timings(key)
    if remembered is not None:
        return _serve(pick(*remembered, split_allowed=split is not None), make, split)
    cached = cache.lookup(key)  # an entry without timings: its choice as it is
    if cached is not None and (cached != SPLIT or split is not None):
        return _serve(cached, make, split)
    log.info("measuring which CPU thread count decodes faster on this machine (once)")
    one = _timed(measure, make(ONE))
    release_free_heap()
    default_model = make(DEFAULT)
    default = _timed(measure, default_model)
    threads = pick(default, one, split_allowed=split is not None)
    log.info(
        "CPU threads: %s (a typical decode: default %.0f ms, one thread %.0f ms, %s)",
        CHOICE_NAMES[threads],
        default.typical * 1000,
        one.typical * 1000,
        "no room in memory for a second instance"
        if split is None
        else f"the encoder with the default and the decoder with one about "
        f"{split_timing(default, one).typical * 1000:.0f} ms",
    )
    cache.store(key, threads, {"default": default, "one": one})
    if threads == DEFAULT:
        return default_model, DEFAULT
    if threads == SPLIT and split is not None:
        return _split_or_default(default_model, split)
    del default_model
    release_free_heap()
    return make(ONE), ONE


def _serve(
    choice: int, make: Callable[[int], Any], split: Callable[[Any], Any] | None
) -> tuple[Any, int]:
    """Load the model for a choice known without measuring (``split`` is given when the
    choice is SPLIT)."""
    if choice == SPLIT and split is not None:
        return _split_or_default(make(DEFAULT), split)
    return make(choice), choice


def _split_or_default(default_model: Any, split: Callable[[Any], Any]) -> tuple[Any, int]:
    """The split model, or, when its one-thread instance cannot be loaded (memory ran
    short since the check, say), the default model alone: it serves as well, slower."""
    try:
        return split(default_model), SPLIT
    except (RuntimeError, OSError, ValueError, MemoryError) as exc:
        log.warning("cannot load the decoder's one-thread instance (%s); using the default", exc)
        release_free_heap()
        return default_model, DEFAULT


class MeasureFailed(Exception):
    """Timing a loaded model failed (the model itself loaded)."""


def _timed(measure: Callable[[Any], Timing], model: Any) -> Timing:
    try:
        return measure(model)
    except (RuntimeError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        # the traceback (which holds the model) is not kept: it must be freed at once
        raise MeasureFailed(str(exc)) from None


def measure_whisper(model: Any, beam_size: int = 5) -> Timing:
    """``probe`` for a faster-whisper ``WhisperModel``: its CTranslate2 model, with the
    start of an English transcript without timestamps as the prompt."""
    from faster_whisper.tokenizer import Tokenizer

    multilingual = bool(model.model.is_multilingual)
    tokenizer = Tokenizer(
        model.hf_tokenizer, multilingual, task="transcribe", language="en" if multilingual else None
    )
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    return probe(model.model, prompt, tokenizer.eot, int(model.model.n_mels), beam_size)


def load_whisper(
    path: str, device: str, compute_type: str, cpu_threads: int, beam_size: int = 5
) -> tuple[Any, int]:
    """A faster-whisper ``WhisperModel`` and the choice it runs with: ``cpu_threads`` as
    configured, or, for 0 (automatic) on a CPU with more than one core, the measured
    choice (``choose``: DEFAULT, ONE or SPLIT). Errors of loading propagate
    (RuntimeError, ValueError, OSError); a measurement that fails is logged and the
    default is used, unremembered."""
    from faster_whisper import WhisperModel

    def make(threads: int) -> Any:
        return WhisperModel(
            path,
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            local_files_only=True,
        )

    def split(default_model: Any) -> Any:
        default_model.model = SplitWhisper(default_model.model, make(ONE).model)
        return default_model

    if cpu_threads != 0 or device != "cpu" or len(os.sched_getaffinity(0)) < 2:
        return make(cpu_threads), cpu_threads
    # A model that loads but cannot be timed, or a home that cannot be found (Path.home()
    # without HOME or a passwd entry), must still serve: CTranslate2's own choice, as
    # before the measurement existed. A model that cannot be loaded fails at once.
    try:
        cache = ThreadCache(cache_dir())
        key = machine_key(path, compute_type, beam_size)
    except (RuntimeError, OSError) as exc:
        reason = f"no cache directory: {exc}"
    else:
        try:
            measure = functools.partial(measure_whisper, beam_size=beam_size)
            return choose(
                cache,
                key,
                make,
                measure,
                split if room_for_second_copy(path, memory_available()) else None,
            )
        except MeasureFailed as exc:
            reason = str(exc)
    log.warning("could not measure the CPU thread count (%s); using the default", reason)
    release_free_heap()  # outside the except block: its traceback held the probed model
    return make(DEFAULT), DEFAULT
