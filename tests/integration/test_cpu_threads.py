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
from whisperd.engine.model import release_free_heap

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="one CPU: there is no thread count to choose"
)


def test_measured_on_the_first_load_then_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "cache"))
    path = resolve_model(None).path
    room = split.room_for_second_copy(path, split.memory_available())  # before any load
    model, chosen = threads.load_whisper(path, "cpu", "int8", 0)
    (entry,) = json.loads((tmp_path / "cache" / "cpu-threads.json").read_text())["entries"].values()
    measured = {name: threads.Timing(**entry["measured"][name]) for name in ("default", "one")}
    for timing in measured.values():  # both measured, with plausible figures
        assert 0 < timing.encode < 30 and 0 < timing.step < 5, entry
    assert entry["threads"] == chosen == threads.pick(measured["default"], measured["one"], room)
    segments, _ = model.transcribe(_tone(), beam_size=1)
    list(segments)  # the model kept is a working one

    def measuring_again(model: Any, beam_size: int = 5) -> threads.Timing:
        raise AssertionError("measured a second time")

    monkeypatch.setattr(threads, "measure_whisper", measuring_again)
    del model, segments  # the memory of the first load is free again, as it was before it
    release_free_heap()
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


def test_a_split_model_encodes_on_one_instance_and_decodes_on_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split (threads.SPLIT, remembered here as if measured), serving the engine:
    only the default instance encodes, and the one-thread instance is handed encoded
    features only (its own encoder, one thread, would be the slow one), on the fast
    path, on faster-whisper's own path and for word timestamps (``align``); and jfk is
    heard on each."""
    from faster_whisper.audio import decode_audio

    from tests.conftest import assert_heard_jfk, shared_audio
    from whisperd.config import DaemonConfig
    from whisperd.engine.core import Engine

    path = resolve_model(None).path
    if not split.room_for_second_copy(path, split.memory_available()):
        pytest.skip("no room for a second copy of the model on this machine")
    audio = decode_audio(str(shared_audio("jfk.flac")))
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path))
    timings = {"default": threads.Timing(0.2, 0.01), "one": threads.Timing(0.4, 0.007)}
    key = threads.machine_key(path, "int8", 5)
    threads.ThreadCache(tmp_path).store(key, threads.SPLIT, timings)
    engine = Engine(DaemonConfig(device="cpu"))
    assert engine.load() > 0 and engine.describe().get("decoder_threads") == 1
    ct2 = engine._model.model  # type: ignore[union-attr]
    assert isinstance(ct2, split.SplitWhisper)
    calls: list[tuple[str, str, int]] = []
    ct2.encoder = _Recorded(ct2.encoder, "encoder", calls)
    ct2.decoder = _Recorded(ct2.decoder, "decoder", calls)
    for options, decoder in (
        ({"fast_short_audio": True, "without_timestamps": True}, "unpadded"),
        ({}, "standard"),
        ({"word_timestamps": True}, "standard"),
    ):
        calls.clear()
        result = engine.transcribe(audio, options)
        assert result.path == decoder, options
        assert_heard_jfk(result.text)
        assert {who for who, what, _ in calls if what == "encode"} == {"encoder"}, calls
        handed = [(what, width) for who, what, width in calls if who == "decoder"]
        assert handed and all(width == 384 for _, width in handed), calls  # d_model: encoded
        assert ("align" in {what for what, _ in handed}) == ("word_timestamps" in options)


class _Recorded:
    """A CTranslate2 instance that records each call: who, what, and the last dimension
    of the features it was given (d_model for encoded ones, frames for a log-mel)."""

    def __init__(self, instance: Any, name: str, calls: list[tuple[str, str, int]]) -> None:
        self.instance, self.name, self.calls = instance, name, calls

    def __getattr__(self, what: str) -> Any:
        found = getattr(self.instance, what)
        if what not in ("encode", "generate", "align", "detect_language"):
            return found

        def recorded(features: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((self.name, what, int(features.shape[-1])))
            return found(features, *args, **kwargs)

        return recorded
