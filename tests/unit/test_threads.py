"""The daemon stops numpy's OpenBLAS threads from spinning after each call.

Spinning OpenBLAS threads took the cores from the CTranslate2 encoder that runs right
after the log-mel features: on 2 cores a 2 s dictation's encode went from 46 ms to 93 ms
(docs/benchmarks.md). The thread count must stay as it is: one thread changes the
features' summation order and with it some words, and whisperd's text must equal
in-process faster-whisper's (tests/integration/test_accuracy.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import ctypes, os, sys
    from whisperd import server
    assert "numpy" not in sys.modules, "numpy loaded before the daemon could set OpenBLAS up"
    server.stop_blas_spinning()
    import numpy
    libs = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line}
    threads = "no-openblas"
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            if hasattr(lib, name):
                threads = str(getattr(lib, name)())
    print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), threads)
    """
)


def probe(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS")}


def test_daemon_stops_blas_spinning_and_keeps_its_thread_count() -> None:
    timeout, threads = probe(base_env())
    assert timeout == "4"
    if threads != "no-openblas":
        assert int(threads) == min(os.cpu_count() or 1, 64)


def test_the_user_may_still_choose() -> None:
    timeout, _ = probe({**base_env(), "OPENBLAS_THREAD_TIMEOUT": "10"})
    assert timeout == "10"
