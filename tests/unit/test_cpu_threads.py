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
        (Timing(0.20, 0.006), Timing(0.20, 0.004), ONE),
    ],
)
def test_pick_the_faster_for_a_typical_decode(default: Timing, one: Timing, chosen: int) -> None:
    assert pick(default, one) == chosen


class Loads:
    """``make`` and ``measure`` doubles: which models were made, how many live at once."""

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
    assert first.measured == [DEFAULT, ONE] and first.made == [DEFAULT, ONE]
    stored = json.loads(cache.path.read_text())["entries"]
    (entry,) = stored.values()
    assert entry["threads"] == ONE and entry["measured"]["one"]["step"] == 0.0054
    again = Loads(FAST_CORES)  # another measurement would now pick the default
    assert choose(cache, KEY, again.make, again.measure) == ({"threads": ONE}, ONE)
    assert again.measured == [] and again.made == [ONE]


def test_the_default_kept_is_loaded_again_not_held_during_the_second_measure(
    tmp_path: Path,
) -> None:
    """One model in memory at a time: the default's instance is dropped before the
    one-thread instance loads, and loaded again when it wins."""
    loads = Loads(FAST_CORES)
    model, count = choose(ThreadCache(tmp_path), KEY, loads.make, loads.measure)
    assert (model, count) == ({"threads": DEFAULT}, DEFAULT)
    assert loads.made == [DEFAULT, ONE, DEFAULT]


def test_another_machine_or_model_is_measured_again(tmp_path: Path) -> None:
    cache = ThreadCache(tmp_path)
    choose(cache, KEY, Loads(SLOW_STEPS).make, Loads(SLOW_STEPS).measure)
    for changed in ({"cpus": 4}, {"cpu": "Intel Xeon"}, {"files": [1, 3]}, {"model": "/n"}):
        loads = Loads(FAST_CORES)
        assert choose(cache, {**KEY, **changed}, loads.make, loads.measure)[1] == DEFAULT
        assert loads.measured == [DEFAULT, ONE], changed
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
    ],
)
def test_a_malformed_cache_is_measured_again(tmp_path: Path, content: str) -> None:
    cache = ThreadCache(tmp_path)
    cache.path.write_text(content.replace("%s", ThreadCache.digest(KEY)))
    assert cache.lookup(KEY) is None
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
    made: list[int] = []

    class Model:
        def __init__(self, path: str, **kwargs: Any) -> None:
            made.append(kwargs["cpu_threads"])

    import faster_whisper

    monkeypatch.setattr(faster_whisper, "WhisperModel", Model)

    def no_measuring(*args: Any) -> Any:
        raise AssertionError("measured")

    monkeypatch.setattr(threads, "choose", no_measuring)
    assert threads.load_whisper("/m", "cpu", "int8", 2)[1] == 2
    assert threads.load_whisper("/m", "cuda", "float16", 0)[1] == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert threads.load_whisper("/m", "cpu", "int8", 0)[1] == 0
    assert made == [2, 0, 0]


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
