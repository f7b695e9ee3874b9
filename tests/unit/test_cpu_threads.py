"""cpu_threads = 0: the thread count is measured once per machine and model, remembered,
and only the chosen model is kept (whisperd/engine/threads.py). Model loading and timing
are doubled here; tests/integration/test_cpu_threads.py runs them for real."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from whisperd import cli
from whisperd.engine import threads
from whisperd.engine.threads import DEFAULT, ONE, ThreadCache, Timing, choose, pick

KEY: dict[str, Any] = {"cpu": "AMD EPYC", "cpus": 2, "model": "/m", "files": [1, 2]}


@pytest.mark.parametrize(
    ("default", "one", "chosen"),
    [
        # a 2-vCPU KVM guest: the encoder halves with two threads, each step doubles
        (Timing(0.16, 0.011), Timing(0.27, 0.0054), ONE),
        # a machine whose cores help both: the default stays
        (Timing(0.15, 0.004), Timing(0.30, 0.008), DEFAULT),
        # one thread only a little faster (within the noise of one measurement): default
        (Timing(0.20, 0.006), Timing(0.20, 0.0058), DEFAULT),
        (Timing(0.20, 0.006), Timing(0.15, 0.004), ONE),
    ],
)
def test_pick_the_faster_for_a_typical_decode(default: Timing, one: Timing, chosen: int) -> None:
    assert pick(default, one) == chosen


class Loads:
    """``make`` and ``measure`` doubles: which models were made and which measured."""

    def __init__(self, timings: dict[int, Timing]) -> None:
        self.timings = timings
        self.made: list[int] = []
        self.measured: list[int] = []

    def make(self, count: int) -> Any:
        self.made.append(count)
        return {"threads": count}

    def measure(self, model: Any) -> Timing:
        self.measured.append(model["threads"])
        return self.timings[model["threads"]]


SLOW_STEPS = {DEFAULT: Timing(0.16, 0.011), ONE: Timing(0.27, 0.0054)}
FAST_CORES = {DEFAULT: Timing(0.15, 0.004), ONE: Timing(0.30, 0.008)}


def test_measured_once_then_remembered(tmp_path: Path) -> None:
    cache = ThreadCache(tmp_path / "whisperd")
    first = Loads(SLOW_STEPS)
    model, count = choose(cache, KEY, first.make, first.measure)
    assert (model, count) == ({"threads": ONE}, ONE)
    # one thread first, dropped, the default measured, one thread loaded again
    assert first.measured == [ONE, DEFAULT] and first.made == [ONE, DEFAULT, ONE]
    stored = json.loads(cache.path.read_text())["entries"]
    (entry,) = stored.values()
    assert entry["threads"] == ONE and entry["measured"]["one"]["step"] == 0.0054
    again = Loads(FAST_CORES)  # another measurement would now pick the default
    assert choose(cache, KEY, again.make, again.measure) == ({"threads": ONE}, ONE)
    assert again.measured == [] and again.made == [ONE]


def test_when_the_default_wins_its_measured_instance_is_kept(tmp_path: Path) -> None:
    """One model in memory at a time, and on a machine with real cores (the default
    wins) two loads in all: one thread, then the default, kept."""
    loads = Loads(FAST_CORES)
    model, count = choose(ThreadCache(tmp_path), KEY, loads.make, loads.measure)
    assert (model, count) == ({"threads": DEFAULT}, DEFAULT)
    assert loads.made == [ONE, DEFAULT]


def test_another_machine_or_model_is_measured_again(tmp_path: Path) -> None:
    cache = ThreadCache(tmp_path)
    choose(cache, KEY, Loads(SLOW_STEPS).make, Loads(SLOW_STEPS).measure)
    for changed in ({"cpus": 4}, {"cpu": "Intel Xeon"}, {"files": [1, 3]}, {"model": "/n"}):
        loads = Loads(FAST_CORES)
        assert choose(cache, {**KEY, **changed}, loads.make, loads.measure)[1] == DEFAULT
        assert loads.measured == [ONE, DEFAULT], changed
    assert cache.lookup(KEY) == ONE


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{",
        "[]",
        '{"entries": []}',
        '{"entries": {"%s": {"threads": 7}}}',
        '{"entries": {"%s": {"threads": true}}}',
        '{"entries": {"%s": {"threads": "1"}}}',
        '{"entries": {"%s": 1}}',
        '{"entries": {"%s": {"threads": 1}}}',  # no time
        '{"entries": {"%s": {"threads": 1, "at": NaN}}}',
        '{"entries": {"%s": {"threads": 1, "at": true}}}',
        '{"entries": {"%s": {"threads": 1, "at": 1' + "0" * 400 + "}}}",
        "[" * 100_000,  # deeper than the JSON parser's recursion limit
        '{"entries": {"%s": {"threads": 1, "at": 1}}, "pad": "' + "x" * 70_000 + '"}',
    ],
)
def test_a_malformed_cache_is_measured_again(tmp_path: Path, content: str) -> None:
    cache = ThreadCache(tmp_path)
    cache.path.write_text(content.replace("%s", ThreadCache.digest(KEY)))
    assert cache.lookup(KEY) is None
    cache.store({**KEY, "cpus": 9}, DEFAULT, {})  # writing over it works too
    loads = Loads(SLOW_STEPS)
    assert choose(cache, KEY, loads.make, loads.measure)[1] == ONE
    assert cache.lookup(KEY) == ONE


def test_an_unwritable_cache_costs_a_measurement_not_the_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the directory should be
    cache = ThreadCache(blocked / "whisperd")
    loads = Loads(SLOW_STEPS)
    assert choose(cache, KEY, loads.make, loads.measure) == ({"threads": ONE}, ONE)
    assert "cannot remember the CPU thread choice" in caplog.text


def test_the_cache_keeps_the_newest_entries(tmp_path: Path) -> None:
    cache = ThreadCache(tmp_path)
    for n in range(threads.MAX_ENTRIES + 5):
        cache.store({**KEY, "cpus": n}, ONE, {})
    entries = json.loads(cache.path.read_text())["entries"]
    assert len(entries) == threads.MAX_ENTRIES
    assert cache.lookup({**KEY, "cpus": 0}) is None
    assert cache.lookup({**KEY, "cpus": threads.MAX_ENTRIES + 4}) == ONE


def test_cache_directory_systemd_first_then_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", "/c/whisperd:/other")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x")
    assert threads.cache_dir() == Path("/c/whisperd")
    monkeypatch.delenv("CACHE_DIRECTORY")
    assert threads.cache_dir() == Path("/x/whisperd")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert threads.cache_dir() == Path(os.path.expanduser("~/.cache/whisperd"))


def test_explicit_threads_or_one_cpu_are_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = FakeWhispers(monkeypatch)

    def no_measuring(*args: Any) -> Any:
        raise AssertionError("measured")

    monkeypatch.setattr(threads, "choose", no_measuring)
    assert threads.load_whisper("/m", "cpu", "int8", 2)[1] == 2
    assert threads.load_whisper("/m", "cuda", "float16", 0)[1] == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert threads.load_whisper("/m", "cpu", "int8", 0)[1] == 0
    assert loads.made == [2, 0, 0]


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        ({"device": "cpu", "compute_type": "int8", "cpu_threads": 1}, "cpu (int8, 1 thread)"),
        ({"device": "cpu", "compute_type": "int8", "cpu_threads": 4}, "cpu (int8, 4 threads)"),
        ({"device": "cpu", "compute_type": "int8", "cpu_threads": 0}, "cpu (int8)"),
        ({"device": "cpu", "compute_type": "int8"}, "cpu (int8)"),  # an older daemon
        ({"device": "cuda", "compute_type": "float16", "cpu_threads": 4}, "cuda (float16)"),
    ],
)
def test_status_names_the_threads(reply: dict[str, Any], text: str) -> None:
    assert cli.device_text(reply) == text


class FakeCt2:
    """A CTranslate2 Whisper double: encode takes ``encode_s``, each decoded token
    ``step_s``; it decodes as many steps as CTranslate2 would for ``max_length``."""

    def __init__(self, encode_s: float, step_s: float) -> None:
        self.encode_s, self.step_s = encode_s, step_s
        self.asked: list[int] = []

    def encode(self, features: Any, to_cpu: bool) -> Any:
        assert list(features.shape) == [1, 80, threads.PROBE_FRAMES]  # the 30 s window
        _sleep(self.encode_s)
        return "encoded"

    def generate(self, encoded: Any, prompts: list[list[int]], **options: Any) -> Any:
        assert encoded == "encoded" and options["suppress_tokens"] == [50256]
        assert options["beam_size"] == 3
        start_step = len(prompts[0]) - 1
        length = options["max_length"]
        count = min(length // 2, length - start_step)  # whisper.cc
        self.asked.append(count)
        _sleep(count * self.step_s)

        class Result:
            sequences_ids = [[7] * count]

        return [Result()]


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


def test_probe_times_the_encoder_and_one_step() -> None:
    fake = FakeCt2(0.03, 0.002)
    timing = threads.probe(fake, [50257, 50362], 50256, 80, beam_size=3)
    assert 0.03 <= timing.encode < 0.2  # sleeps overshoot on a loaded machine
    assert 0.0018 <= timing.step < 0.01
    assert fake.asked[:2] == [2 + threads.SHORT_STEPS, 2 + threads.LONG_STEPS]


def test_a_failing_measurement_serves_the_default_unremembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loads = FakeWhispers(monkeypatch)
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))

    def failing(model: Any, beam_size: int = 5) -> Timing:
        raise RuntimeError("probe broke")

    monkeypatch.setattr(threads, "measure_whisper", failing)
    model, count = threads.load_whisper("/m", "cpu", "int8", 0)
    assert count == DEFAULT and loads.made == [ONE, DEFAULT]
    assert "could not measure the CPU thread count (probe broke)" in caplog.text
    assert not (tmp_path / threads.CACHE_NAME).exists()


class FakeWhispers:
    """faster_whisper.WhisperModel doubled: the thread counts loaded, in order, and the
    most instances alive at once (weak references: a dropped model is gone)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_loading: bool = False) -> None:
        import weakref

        import faster_whisper

        self.made: list[int] = []
        self.most_alive = 0
        alive: list[weakref.ref[Any]] = []
        recorder = self

        class Model:
            def __init__(self, path: str, **kwargs: Any) -> None:
                recorder.made.append(kwargs["cpu_threads"])
                if fail_loading:
                    raise RuntimeError("Unable to open file 'model.bin'")
                living = sum(ref() is not None for ref in alive) + 1
                recorder.most_alive = max(recorder.most_alive, living)
                alive.append(weakref.ref(self))

        monkeypatch.setattr(faster_whisper, "WhisperModel", Model)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
        monkeypatch.setattr(threads, "machine_key", lambda *args: KEY)


def test_a_model_that_cannot_load_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken model is reported as such, after one attempt: not as a failed
    measurement followed by a second load."""
    loads = FakeWhispers(monkeypatch, fail_loading=True)
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))
    with pytest.raises(RuntimeError, match="model.bin"):
        threads.load_whisper("/m", "cpu", "int8", 0)
    assert loads.made == [ONE] and "could not measure" not in caplog.text


def test_no_home_serves_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loads = FakeWhispers(monkeypatch)

    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(threads, "cache_dir", homeless)
    assert threads.load_whisper("/m", "cpu", "int8", 0)[1] == DEFAULT and loads.made == [DEFAULT]
    assert "no cache directory: Could not determine home directory." in caplog.text


def test_a_failed_measurement_frees_its_model_before_the_next_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One model in memory at a time, on the failure path too: the probed model is not
    kept alive by the error's traceback while the default loads."""
    loads = FakeWhispers(monkeypatch)
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))
    calls = [0]

    def second_fails(model: Any, beam_size: int = 5) -> Timing:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("probe broke")
        return Timing(0.2, 0.005)

    monkeypatch.setattr(threads, "measure_whisper", second_fails)
    model, count = threads.load_whisper("/m", "cpu", "int8", 0)
    assert count == DEFAULT and len(loads.made) == 3 and loads.most_alive == 1
