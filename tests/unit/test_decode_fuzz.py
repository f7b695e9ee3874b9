"""Seeded fuzz of the file decoder: mutated files of every accepted format (issue 11).

Every mutant must come back as samples (float32, finite, no longer than the limit) or as a
typed BadAudio; nothing else may escape and the calling process must live (the decoder
runs in its own process, so a crash there is a BadAudio here). The figures are printed
(``pytest -s``) and recorded in docs/robustness.md; WHISPERD_FUZZ_CASES changes how many
mutants each seed gets (default 36: 324 files).
"""

from __future__ import annotations

import collections
import os
import time

import numpy as np
import pytest

from tests import audio_fuzz
from whisperd.audio import SAMPLE_RATE, BadAudio, decode_file
from whisperd.decoding import sandbox

pytestmark = pytest.mark.slow

PER_SEED = int(os.environ.get("WHISPERD_FUZZ_CASES", "36"))
MAX_SECONDS = 30.0


def test_mutated_files_of_every_format_give_samples_or_a_typed_error() -> None:
    seeds = {name: audio_fuzz.encode(name, seconds=2.0) for name in audio_fuzz.SEEDS}
    outcomes: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    for case in audio_fuzz.mutations(seeds, PER_SEED, rng_seed=11):
        try:
            out = decode_file(case.data, max_seconds=MAX_SECONDS)
        except BadAudio as exc:
            outcomes[f"{exc.code}: {kind_of(str(exc))}"] += 1
            continue
        assert out.dtype == np.float32 and out.ndim == 1, case
        assert out.size <= MAX_SECONDS * SAMPLE_RATE, case
        assert np.isfinite(out).all(), (case.seed, case.how)
        outcomes["samples"] += 1
    cases = sum(outcomes.values())
    assert cases == PER_SEED * len(seeds)
    peak = sandbox.stats.peak_kib // 1024
    print(
        f"\ndecode fuzz: {cases} mutants of {len(seeds)} formats in "
        f"{time.monotonic() - started:.0f} s; decoder process peak RSS {peak} MiB; "
        f"outcomes {dict(sorted(outcomes.items()))}"
    )


def kind_of(message: str) -> str:
    """The kind of failure, without what varies from file to file."""
    reason = message.removeprefix("cannot decode the audio file: ")
    return "".join("N" if c.isdigit() else c for c in reason.split(" (")[0])
