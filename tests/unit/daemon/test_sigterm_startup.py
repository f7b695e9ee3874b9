"""SIGTERM right after start (issue 10, item 2b): always a clean exit 0, never a stale socket.

whisperctl starts the daemon as ``python -m whisperd.server``; a stop that lands while the
daemon is still starting (binding, loading its modules) must be acted on like any other.
No model is needed: the daemon never gets to load one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTS = 200  # in total, over PARALLEL sequences of daemons; each one is tried
PARALLEL = 4
START_TIMEOUT = 60.0  # seconds for one start to show its socket, and again to exit


def start_then_stop(base: Path, index: int, delay: float) -> tuple[int, bool, str]:
    """Start a daemon, wait until its socket exists, wait ``delay``, send SIGTERM."""
    runtime = base / f"run{index}"
    runtime.mkdir(mode=0o700)
    sock = runtime / "whisperd.sock"
    log = base / f"whisperd{index}.log"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(base / "cfg")}
    env.pop("LISTEN_FDS", None)
    env.pop("NOTIFY_SOCKET", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "whisperd.server", "--socket", str(sock)],
            stdout=out,
            stderr=out,
            env=env,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not sock.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        code = process.wait(START_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, sock.exists(), log.read_text(errors="replace")


def test_sigterm_right_after_start_exits_cleanly(tmp_path: Path) -> None:
    rng = random.Random(20261201)
    delays = [rng.choice((0.0, rng.uniform(0, 0.004), rng.uniform(0, 0.04))) for _ in range(STARTS)]
    failures: list[str] = []
    tried: list[int] = []
    lock = threading.Lock()

    def sequence(first: int) -> None:
        for index in range(first, STARTS, PARALLEL):
            code, stale, log = start_then_stop(tmp_path, index, delays[index])
            with lock:
                tried.append(index)
                if code != 0 or stale:
                    failures.append(f"start {index}: exit {code}, stale socket {stale}\n{log}")

    threads = [threading.Thread(target=sequence, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tried) == STARTS
    assert not failures, f"{len(failures)} of {len(tried)} starts failed; first:\n{failures[0]}"
