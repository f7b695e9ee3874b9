"""cpu_threads = 0 with the real model: the thread count is measured on the first load,
remembered in the cache directory, and reported by the daemon (whisperd/engine/threads.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_daemon, stop_daemon
from whisperd.client import Client
from whisperd.engine import resolve_model, split, threads

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="one CPU: there is no thread count to choose"
)


def test_measured_on_the_first_load_then_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "cache"))
    path = resolve_model(None).path
    model, chosen = threads.load_whisper(path, "cpu", "int8", 0)
    (entry,) = json.loads((tmp_path / "cache" / "cpu-threads.json").read_text())["entries"].values()
    measured = {name: threads.Timing(**entry["measured"][name]) for name in ("default", "one")}
    for timing in measured.values():  # both measured, with plausible figures
        assert 0 < timing.encode < 30 and 0 < timing.step < 5, entry
    room = split.room_for_second_copy(path, split.memory_available())
    assert entry["threads"] == chosen == threads.pick(measured["default"], measured["one"], room)
    segments, _ = model.transcribe(_tone(), beam_size=1)
    list(segments)  # the model kept is a working one

    def measuring_again(model: Any, beam_size: int = 5) -> threads.Timing:
        raise AssertionError("measured a second time")

    monkeypatch.setattr(threads, "measure_whisper", measuring_again)
    assert threads.load_whisper(path, "cpu", "int8", 0)[1] == chosen


def _tone() -> Any:
    import numpy as np

    return (0.1 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)


def test_the_daemon_reports_its_threads(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, env={"CACHE_DIRECTORY": str(tmp_path / "cache")})
    try:
        with Client.connect(str(daemon.socket_path), timeout=120, autostart=False) as client:
            loaded = client.load()
            status = client.status()
        assert loaded["cpu_threads"] == status["cpu_threads"]
        remembered = json.loads((tmp_path / "cache" / "cpu-threads.json").read_text())
        chosen = threads.SPLIT if status.get("decoder_threads") else status["cpu_threads"]
        assert [e["threads"] for e in remembered["entries"].values()] == [chosen]
        assert loaded.get("decoder_threads") == status.get("decoder_threads")
        assert "CPU threads:" in daemon.log()  # the choice and both timings, once
    finally:
        stop_daemon(daemon)
    (tmp_path / "pinned").mkdir()
    pinned = start_daemon(tmp_path / "pinned", "--cpu-threads", "2")
    try:
        with Client.connect(str(pinned.socket_path), timeout=120, autostart=False) as client:
            assert client.load()["cpu_threads"] == 2
        assert "measuring" not in pinned.log()
    finally:
        stop_daemon(pinned)


def test_a_split_model_decodes_as_its_one_thread_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split (threads.SPLIT, remembered here as if measured): the encoder's output
    of the default instance, decoded by the one-thread instance, gives the tokens that
    instance gives alone for the same output (two paths, one machine); and the engine
    serving with it hears jfk on the fast path and on faster-whisper's own."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    from tests.conftest import assert_heard_jfk, shared_audio
    from whisperd.config import DaemonConfig
    from whisperd.engine.core import Engine

    path = resolve_model(None).path
    if not split.room_for_second_copy(path, split.memory_available()):
        pytest.skip("no room for a second copy of the model on this machine")
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))
    threads.ThreadCache(tmp_path).store(threads.machine_key(path, "int8", 5), threads.SPLIT, {})
    model, chosen = threads.load_whisper(path, "cpu", "int8", 0)
    assert chosen == threads.SPLIT and isinstance(model.model, split.SplitWhisper)

    audio = decode_audio(str(shared_audio("jfk.flac")))
    features = model.feature_extractor(audio)[:, :3000]
    import ctranslate2
    import numpy as np

    padded = np.zeros((1, features.shape[0], 3000), np.float32)
    padded[0, :, : features.shape[1]] = features
    encoded = model.model.encode(ctranslate2.StorageView.from_array(padded), to_cpu=False)
    prompt = [50257, 50362]  # <|startoftranscript|><|notimestamps|> of tiny.en
    alone = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1)
    ours = model.model.generate(encoded, [prompt], beam_size=5)[0].sequences_ids[0]
    theirs = alone.model.generate(encoded, [prompt], beam_size=5)[0].sequences_ids[0]
    assert ours == theirs and len(ours) > 10

    engine = Engine(DaemonConfig())
    assert engine.load() > 0 and engine.describe()["decoder_threads"] == 1
    for fast in (True, False):
        result = engine.transcribe(audio, {"fast_short_audio": fast, "without_timestamps": True})
        assert_heard_jfk(result.text)
