"""The daemon keeps numpy's BLAS to one thread, so it never competes with CTranslate2.

OpenBLAS worker threads spin after each numpy call; on a 2-core machine they took the
cores from the CTranslate2 encoder that runs right after the log-mel features, and a
2 s dictation's encode went from 46 ms to 93 ms (bench/results.md, "numpy BLAS threads").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import ctypes, os, sys
    from whisperd import server
    server.limit_blas_threads()
    import numpy  # OpenBLAS reads its thread count when numpy loads it
    libs = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line}
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            if hasattr(lib, name):
                print(getattr(lib, name)())
                sys.exit(0)
    print("no-openblas")
    """
)


def probe(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")}


def test_daemon_runs_numpy_blas_single_threaded() -> None:
    result = probe(base_env())
    if result == "no-openblas":  # a numpy built on another BLAS: nothing spins
        return
    assert result == "1"


def test_the_user_may_still_choose_blas_threads() -> None:
    result = probe({**base_env(), "OPENBLAS_NUM_THREADS": "2"})
    if result == "no-openblas":
        return
    assert result == "2"
