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
from whisperd.engine import resolve_model, threads

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
    assert entry["threads"] == chosen == threads.pick(measured["default"], measured["one"])
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
        assert [e["threads"] for e in remembered["entries"].values()] == [status["cpu_threads"]]
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
