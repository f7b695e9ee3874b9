"""cpu_threads = 0 may split a model: the encoder with CTranslate2's default thread count,
the decoder with one thread, on two instances (whisperd/engine/split.py, threads.py).
Loading and timing are doubled here; tests/integration/test_cpu_threads.py runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from whisperd import cli
from whisperd.config import DaemonConfig
from whisperd.engine import split, threads
from whisperd.engine.core import Engine
from whisperd.engine.model import DeviceChoice
from whisperd.engine.split import SplitWhisper, room_for_second_copy
from whisperd.engine.threads import DEFAULT, ONE, SPLIT, ThreadCache, Timing, choose, pick

KEY: dict[str, Any] = {"cpu": "AMD EPYC", "cpus": 2, "model": "/m", "files": [1, 2]}

# measured at the first load on a 2-vCPU AMD EPYC (Zen 4) guest: the encoder twice as
# fast with two threads, a decoder step a third faster with one
ZEN4_GUEST = {DEFAULT: Timing(0.207, 0.0105), ONE: Timing(0.428, 0.0070)}
# a machine whose cores help both: the default everywhere
FAST_CORES = {DEFAULT: Timing(0.15, 0.004), ONE: Timing(0.30, 0.008)}
# the 2-vCPU KVM guest of threads.py: one thread wins alone, the split wins more
KVM_GUEST = {DEFAULT: Timing(0.16, 0.011), ONE: Timing(0.27, 0.0054)}
# the encoder as fast with one thread: the split would only cost memory
ONE_EVERYWHERE = {DEFAULT: Timing(0.30, 0.011), ONE: Timing(0.29, 0.0054)}


@pytest.mark.parametrize(
    ("timings", "allowed", "chosen"),
    [
        (ZEN4_GUEST, True, SPLIT),
        (ZEN4_GUEST, False, DEFAULT),  # one thread alone is slower: its encoder
        (FAST_CORES, True, DEFAULT),
        (KVM_GUEST, True, SPLIT),
        (KVM_GUEST, False, ONE),
        (ONE_EVERYWHERE, True, ONE),
        # one thread not clearly faster than the default, so the default would serve:
        # the split is measured against that, not against one thread
        ({DEFAULT: Timing(0.207, 0.0105), ONE: Timing(0.33, 0.007)}, True, SPLIT),
    ],
)
def test_pick_the_split_only_when_clearly_faster_than_both(
    timings: dict[int, Timing], allowed: bool, chosen: int
) -> None:
    assert pick(timings[DEFAULT], timings[ONE], split_allowed=allowed) == chosen


class Loads:
    """``make``, ``measure`` and ``split`` doubles: what was made, measured and split."""

    def __init__(self, timings: dict[int, Timing]) -> None:
        self.timings = timings
        self.made: list[int] = []
        self.measured: list[int] = []
        self.split: list[Any] = []

    def make(self, count: int) -> Any:
        assert count in (DEFAULT, ONE), "make loads one thread count; the split is built"
        self.made.append(count)
        return {"threads": count}

    def measure(self, model: Any) -> Timing:
        self.measured.append(model["threads"])
        return self.timings[model["threads"]]

    def to_split(self, default_model: Any) -> Any:
        self.split.append(default_model)
        self.made.append(ONE)
        return {"split": default_model}


def test_the_split_keeps_the_measured_default_and_adds_one_thread(tmp_path: Path) -> None:
    cache = ThreadCache(tmp_path)
    loads = Loads(ZEN4_GUEST)
    model, choice = choose(cache, KEY, loads.make, loads.measure, loads.to_split)
    assert choice == SPLIT and model == {"split": {"threads": DEFAULT}}
    # one thread measured and dropped, the default measured and kept, one thread beside it
    assert loads.measured == [ONE, DEFAULT] and loads.made == [ONE, DEFAULT, ONE]
    (entry,) = json.loads(cache.path.read_text())["entries"].values()
    assert entry["threads"] == SPLIT
    again = Loads(FAST_CORES)
    assert choose(cache, KEY, again.make, again.measure, again.to_split)[1] == SPLIT
    assert again.measured == [] and again.made == [DEFAULT, ONE]


def test_remembered_timings_are_picked_from_with_the_memory_of_the_moment(
    tmp_path: Path,
) -> None:
    """Whether a second instance fits is asked at each load, not remembered: a split
    measured once serves as the default while memory is short, and as the split again
    once there is room, without measuring again."""
    cache = ThreadCache(tmp_path)
    first = Loads(ZEN4_GUEST)
    assert choose(cache, KEY, first.make, first.measure, None)[1] == DEFAULT  # no room
    again = Loads(FAST_CORES)
    model, choice = choose(cache, KEY, again.make, again.measure, again.to_split)
    assert (model, choice) == ({"split": {"threads": DEFAULT}}, SPLIT)
    assert again.measured == [] and again.made == [DEFAULT, ONE]
    short = Loads(FAST_CORES)
    assert choose(cache, KEY, short.make, short.measure, None) == ({"threads": DEFAULT}, DEFAULT)
    assert short.measured == []


def test_a_remembered_split_without_timings_or_room_is_measured_again(tmp_path: Path) -> None:
    cache = ThreadCache(tmp_path)
    cache.store(KEY, SPLIT, {})
    loads = Loads(ZEN4_GUEST)
    assert choose(cache, KEY, loads.make, loads.measure, None) == ({"threads": DEFAULT}, DEFAULT)
    assert loads.measured == [ONE, DEFAULT] and cache.lookup(KEY) == DEFAULT


@pytest.mark.parametrize(
    "measured",
    [
        {"default": {"encode": 0.2, "step": 0.01}},  # one missing
        {"default": {"encode": 0.2, "step": "fast"}, "one": {"encode": 0.4, "step": 0.007}},
        {"default": {"encode": -1, "step": 0.01}, "one": {"encode": 0.4, "step": 0.007}},
        {"default": {"encode": 1e400, "step": 0.01}, "one": {"encode": 0.4, "step": 0.007}},
        {"default": {"encode": 10**400, "step": 0.01}, "one": {"encode": 0.4, "step": 0.007}},
        {"default": [0.2, 0.01], "one": {"encode": 0.4, "step": 0.007}},
    ],
)
def test_malformed_timings_are_not_picked_from(tmp_path: Path, measured: Any) -> None:
    cache = ThreadCache(tmp_path)
    cache.path.write_text(
        json.dumps(
            {"entries": {cache.digest(KEY): {"threads": ONE, "measured": measured, "at": 1}}}
        )
    )
    assert cache.timings(KEY) is None
    loads = Loads(ZEN4_GUEST)
    assert choose(cache, KEY, loads.make, loads.measure, loads.to_split)[1] == ONE  # as stored
    assert loads.measured == []


def test_a_split_whose_second_instance_fails_to_load_serves_the_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loads = Loads(ZEN4_GUEST)

    def no_memory(default_model: Any) -> Any:
        raise MemoryError("std::bad_alloc")

    model, choice = choose(ThreadCache(tmp_path), KEY, loads.make, loads.measure, no_memory)
    assert (model, choice) == ({"threads": DEFAULT}, DEFAULT)
    assert "cannot load the decoder's one-thread instance (std::bad_alloc)" in caplog.text


def test_a_choice_made_before_the_split_existed_is_measured_again(tmp_path: Path) -> None:
    """The key names the choices there were: a 0 or 1 remembered by an older whisperd,
    chosen without the split, is not this key's."""
    key = threads.machine_key("/nowhere", "int8", 5)
    older = {name: value for name, value in key.items() if name != "choices"}
    cache = ThreadCache(tmp_path)
    cache.store(older, ONE, {"default": ZEN4_GUEST[DEFAULT], "one": ZEN4_GUEST[ONE]})
    loads = Loads(ZEN4_GUEST)
    assert choose(cache, key, loads.make, loads.measure, loads.to_split)[1] == SPLIT
    assert loads.measured == [ONE, DEFAULT]


@pytest.mark.parametrize(
    ("size", "available", "room"),
    [
        (75_000_000, 8 << 30, True),  # tiny.en on a desktop
        (3_000_000_000, 8 << 30, False),  # large-v3 (float16 on disk) on 8 GiB
        (3_000_000_000, 64 << 30, True),
        (75_000_000, 500_000_000, False),  # 500 MB available
    ],
)
def test_room_for_a_second_copy(tmp_path: Path, size: int, available: int, room: bool) -> None:
    with open(tmp_path / "model.bin", "wb") as weights:
        weights.truncate(size)  # sparse: no disk used
    assert room_for_second_copy(str(tmp_path), available) is room


def test_no_room_when_the_model_or_the_memory_is_unknown(tmp_path: Path) -> None:
    assert not room_for_second_copy(str(tmp_path / "missing"), 8 << 30)
    (tmp_path / "model.bin").write_bytes(b"x")
    assert not room_for_second_copy(str(tmp_path), None)
    assert room_for_second_copy(str(tmp_path), 8 << 30)


def test_memory_available_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")
    assert split.memory_available(meminfo) == 20000000 * 1024
    meminfo.write_text("MemTotal: 1 kB\n")
    assert split.memory_available(meminfo) is None
    meminfo.write_text("MemAvailable: lots kB\n")
    assert split.memory_available(meminfo) is None
    assert split.memory_available(tmp_path / "absent") is None


class Instance:
    """A CTranslate2 Whisper instance double that records what it was asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_multilingual = False
        self.calls: list[str] = []

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        self.calls.append("encode")
        return ("encoded by", self.name)

    def generate(self, encoded: Any, prompts: Any, **options: Any) -> Any:
        self.calls.append("generate")
        return [encoded, self.name]


def test_the_split_encodes_on_one_instance_and_decodes_on_the_other() -> None:
    encoder, decoder = Instance("default"), Instance("one")
    model = SplitWhisper(encoder, decoder)
    encoded = model.encode("features", to_cpu=False)
    assert model.generate(encoded, [[1]], beam_size=5) == [("encoded by", "default"), "one"]
    assert encoder.calls == ["encode"] and decoder.calls == ["generate"]
    assert model.is_multilingual is False
    with pytest.raises(AttributeError):
        model.no_such_thing  # noqa: B018 - the decoder's own error


def test_the_split_unloads_and_loads_both_instances_and_copies() -> None:
    import copy

    class Unloadable(Instance):
        def unload_model(self, to_cpu: bool = False) -> None:
            self.calls.append(f"unload {to_cpu}")

        def load_model(self, keep_cache: bool = False) -> None:
            self.calls.append("load")

    encoder, decoder = Unloadable("default"), Unloadable("one")
    model = SplitWhisper(encoder, decoder)
    model.unload_model(to_cpu=True)
    model.load_model()
    assert encoder.calls == decoder.calls == ["unload True", "load"]
    assert copy.copy(model).decoder is decoder  # no endless __getattr__ while copying


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (
            {"device": "cpu", "compute_type": "int8", "cpu_threads": 0, "decoder_threads": 1},
            "cpu (int8, decoder 1 thread)",
        ),
        (
            {"device": "cpu", "compute_type": "int8", "cpu_threads": 4, "decoder_threads": 1},
            "cpu (int8, 4 threads, decoder 1 thread)",
        ),
    ],
)
def test_status_names_the_decoder_threads(reply: dict[str, Any], text: str) -> None:
    assert cli.device_text(reply) == text


def test_the_engine_reports_a_split_as_the_encoder_and_decoder_threads() -> None:
    engine = Engine(DaemonConfig())
    engine.device = DeviceChoice("cpu", "int8", "configured")
    engine.cpu_threads = SPLIT
    described = engine.describe()
    assert (described["cpu_threads"], described["decoder_threads"]) == (0, 1)
    engine.cpu_threads = ONE
    assert "decoder_threads" not in engine.describe()
