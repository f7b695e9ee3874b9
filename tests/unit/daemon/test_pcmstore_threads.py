"""A live stream's audio is fed on the event loop while its pieces are read on the worker
thread (pieces.decode_piece reads its context and piece itself). A read that joined the
recent parts into a block at the same moment as a feed lost or doubled seconds of audio:
the Wyoming front's 1 s chunks, under load in CI, gave a result 14 words off."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from whisperd.audio import SAMPLE_RATE
from whisperd.daemon import pcmstore
from whisperd.protocol import PcmFormat

CHUNK = SAMPLE_RATE // 10  # 0.1 s parts: a block is sealed every 50 parts


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows, as on a loaded machine."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_reads_on_another_thread_never_lose_or_double_fed_audio(busy_switching: None) -> None:
    samples = np.arange(60 * pcmstore.BLOCK_SAMPLES, dtype=np.int64) % 32000 - 16000
    data = samples.astype("<i2").tobytes()
    stream = pcmstore.CompactStream(PcmFormat("s16le", SAMPLE_RATE, 1))
    fed = threading.Event()

    def read_while_fed() -> None:
        while not fed.is_set():
            length = stream.length
            stream.slice(max(0, length - 3 * SAMPLE_RATE), length)

    reader = threading.Thread(target=read_while_fed)
    reader.start()
    try:
        for start in range(0, len(data), 2 * CHUNK):
            stream.feed(data[start : start + 2 * CHUNK])
    finally:
        fed.set()
        reader.join()
    whole = stream.finish()
    assert whole.size == samples.size
    assert np.array_equal(np.rint(whole * 32768).astype(np.int64), samples)
