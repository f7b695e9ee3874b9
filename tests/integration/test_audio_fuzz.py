"""Seeded fuzz against a real whisperd: mutated files of every accepted format (issue 11).

Each mutant goes through the socket like any client's file. The daemon must answer every
one with a result or a typed audio error, keep the connection, and still be alive and
correct at the end; its memory peak and the decoder failures it logged are printed
(``pytest -s``) for docs/robustness.md. WHISPERD_FUZZ_DAEMON_CASES changes how many
mutants each seed gets (default 36: 324 files, plus the MP3 that used to crash it).
"""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path

import pytest

from tests import audio_fuzz
from tests.conftest import RunningDaemon, shared_audio
from tests.integration.support import assert_healthy, connect, ping, transcribe

pytestmark = pytest.mark.slow

PER_SEED = int(os.environ.get("WHISPERD_FUZZ_DAEMON_CASES", "36"))
TYPED_AUDIO_ERRORS = {"bad_audio", "audio_too_large"}


def test_mutated_files_never_kill_the_daemon(daemon: RunningDaemon) -> None:
    seeds = {name: audio_fuzz.encode(name, seconds=2.0) for name in audio_fuzz.SEEDS}
    cases = list(audio_fuzz.mutations(seeds, PER_SEED, rng_seed=23))
    crasher = audio_fuzz.mp3_frame_layout_switch(shared_audio("hotwords.mp3"))
    cases.append(audio_fuzz.Case("hotwords.mp3", "byte 2856 = 0xf1", crasher))
    outcomes: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    with connect(daemon) as sock:
        for number, case in enumerate(cases):
            _, reply = transcribe(sock, number, case.data)
            if reply["type"] == "result":
                outcomes["result"] += 1
            else:
                assert reply["type"] == "error", (case.seed, case.how, reply)
                assert reply["code"] in TYPED_AUDIO_ERRORS, (case.seed, case.how, reply)
                outcomes[reply["code"]] += 1
            if number % 50 == 0:
                ping(sock, f"alive-{number}")
    assert daemon.process.poll() is None, daemon.log()[-4000:]
    assert sum(outcomes.values()) == len(cases)
    crashes = daemon.log().count("audio decoder process crashed")
    print(
        f"\ndaemon fuzz: {len(cases)} files in {time.monotonic() - started:.0f} s, "
        f"daemon deaths 0, outcomes {dict(outcomes)}, decoder processes crashed {crashes}, "
        f"daemon peak RSS {peak_rss_mib(daemon)} MiB"
    )
    assert_healthy(daemon)


def peak_rss_mib(daemon: RunningDaemon) -> int:
    status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024
