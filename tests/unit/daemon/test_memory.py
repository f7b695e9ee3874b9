"""Audio the daemon holds (issue 11, item 7): streamed PCM is kept as 16-bit samples, and
all requests together stay under a daemon-wide cap, refused with a typed error."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

import numpy as np

from tests.unit.daemon.fakes import FakeEngine, s16le, tone
from tests.unit.daemon.test_connection import serving, serving_peer
from whisperd.audio import SAMPLE_RATE, PcmStreamDecoder
from whisperd.config import DaemonConfig
from whisperd.daemon.limits import Limits
from whisperd.daemon.scheduler import Scheduler
from whisperd.daemon.state import DaemonState
from whisperd.protocol import PcmFormat, Transcribe


def nothing(*_: Any) -> None:
    pass


def stereo_48k(seconds: float) -> bytes:
    mono = np.interp(
        np.arange(int(seconds * 48000)) / 3, np.arange(int(seconds * SAMPLE_RATE)), tone(seconds)
    )
    return s16le(np.repeat(mono.astype(np.float32), 2))


def test_a_stream_is_held_as_16_bit_samples() -> None:
    async def test() -> None:
        config = DaemonConfig(stream_window=0.0, draft_pause=0.0)
        scheduler = Scheduler(config, DaemonState(False), nothing, nothing, FakeEngine())
        request = Transcribe("s", "pcm", PcmFormat("s16le", 48000, 2), {})
        job = scheduler.new_job(request, nothing, None)
        chunk = stereo_48k(0.1)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(300):  # 30 s
                scheduler.add_audio(job, chunk)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert job.stream is not None
        samples = job.stream.length
        assert samples > 29 * SAMPLE_RATE
        assert held < 2.5 * samples, f"{held / samples:.1f} bytes per sample"
        scheduler.shutdown()

    asyncio.run(test())


def test_the_compact_stream_gives_the_decoders_samples() -> None:
    from whisperd.daemon.pcmstore import CompactStream

    fmt = PcmFormat("s16le", 48000, 2)
    data = stereo_48k(2.0)
    reference, compact = PcmStreamDecoder(fmt), CompactStream(fmt)
    for start in range(0, len(data), 4001):  # split anywhere, even inside a frame
        reference.feed(data[start : start + 4001])
        compact.feed(data[start : start + 4001])
    assert compact.length == reference.length
    assert compact.levels.values == reference.levels.values
    expected = reference.finish()
    assert np.max(np.abs(compact.slice(100, 20000) - expected[100:20000])) <= 1 / 32768
    whole = compact.finish()
    assert whole.dtype == np.float32 and whole.size == expected.size
    assert np.max(np.abs(whole - expected)) <= 1 / 32768


def test_all_requests_together_stay_under_the_daemon_wide_cap() -> None:
    async def test() -> None:
        limits = Limits(max_buffered_audio=1000)
        async with serving(DaemonConfig(), limits) as first, serving_peer(first) as second:
            for client in (first.client, second):
                await client.hello()
            await first.client.ask({"type": "transcribe", "id": 1, "format": "file"})
            await first.client.send({"type": "audio", "id": 1, "size": 600}, bytes(600))
            await second.ask({"type": "transcribe", "id": 2, "format": "file"})
            refused = await second.ask({"type": "audio", "id": 2, "size": 600}, bytes(600))
            assert refused["code"] == "overloaded" and refused["id"] == 2, refused
            # The request is dropped; the connection stays usable.
            assert await second.ask({"type": "ping", "id": 3}) == {"type": "pong", "id": 3}
            await first.client.ask({"type": "cancel", "id": 1})  # frees its 600 bytes
            await second.ask({"type": "transcribe", "id": 4, "format": "file"})
            await second.send({"type": "audio", "id": 4, "size": 600}, bytes(600))
            assert await second.ask({"type": "ping", "id": 5}) == {"type": "pong", "id": 5}

    asyncio.run(asyncio.wait_for(test(), 30))


def test_a_file_request_starts_a_decoder_process_while_the_file_uploads() -> None:
    """The first file after the daemon starts must not wait for Python and PyAV to load in
    the decoder process: `transcribe` starts one, so it loads during the upload."""
    from whisperd.audio import release_file_decoder
    from whisperd.decoding import sandbox

    async def test() -> None:
        release_file_decoder()
        assert sandbox._pool._spare is None
        scheduler = Scheduler(DaemonConfig(), DaemonState(False), nothing, nothing, FakeEngine())
        scheduler.new_job(Transcribe("f", "file", None, {}), nothing, None)
        spare = sandbox._pool._spare
        assert spare is not None and spare.poll() is None
        scheduler.shutdown()
        release_file_decoder()

    asyncio.run(test())


def test_a_long_stream_is_read_a_stretch_at_a_time() -> None:
    """A stretch read across the stored blocks is the stream's samples, and reading it
    converts only that stretch (a live piece reads its context at every pause)."""
    from whisperd.daemon import pcmstore

    fmt = PcmFormat("s16le", SAMPLE_RATE, 1)
    rng = np.random.default_rng(7)
    samples = rng.integers(-20000, 20000, 13 * pcmstore.BLOCK_SAMPLES // 4, dtype=np.int16)
    stream = pcmstore.CompactStream(fmt)
    data = samples.astype("<i2").tobytes()
    for start in range(0, len(data), 640):  # 20 ms frames, as whisperd-keys sends them
        stream.feed(data[start : start + 640])
        if start % (640 * 97) == 0:
            stream.slice(0, 10)  # reads in between seal blocks of any size
    assert len(stream.blocks) > 2
    expected = samples.astype(np.float32) / 32768.0
    block = pcmstore.BLOCK_SAMPLES
    for low, high in [(0, 5), (block - 3, block + 3), (10, 3 * block + 7), (0, samples.size)]:
        assert np.array_equal(stream.slice(low, high), expected[low:high])
    assert stream.slice(samples.size, samples.size + 10).size == 0
    assert np.array_equal(stream.finish(), expected)
