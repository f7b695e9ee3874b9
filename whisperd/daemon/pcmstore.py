"""A dictation stream held compactly: 16-bit samples at 16 kHz, 2 bytes a sample.

``PcmStreamDecoder`` (whisperd/audio.py) turns the client's PCM into 16 kHz mono float32
as it arrives; this keeps what it decodes as int16 instead (half of float32, and the
input's own precision for s16le, the encoding every client of ours sends), and gives
float32 back only for the stretch a window, a draft or the final pass needs.

A live stream is fed on the event loop while its pieces are read on the worker thread
(pieces.decode_piece reads its context itself), and a read joins the recent parts into a
block: unguarded, a read and a feed at the same moment lost or doubled seconds of audio.
One lock orders them; it is held for a copy, never for a decode.
"""

from __future__ import annotations

import bisect
import threading
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from whisperd.audio import PcmStreamDecoder
from whisperd.protocol import PcmFormat

if TYPE_CHECKING:
    from whisperd.audio import Levels, Samples

SCALE = 32768.0
Int16Samples = npt.NDArray[np.int16]
# The decoder's small parts (a client's 20 ms frames) are joined into blocks of about
# this many samples, so that reading a stretch joins a few blocks, not the whole stream:
# a live stream reads its context and new piece at every pause, and that work must not
# grow with the length of the dictation.
BLOCK_SAMPLES = 5 * 16000


def to_int16(samples: Samples) -> Int16Samples:
    scaled = np.rint(np.clip(samples, -1.0, 1.0) * SCALE)
    out: Int16Samples = np.clip(scaled, -SCALE, SCALE - 1).astype(np.int16)
    return out


def to_float(samples: Int16Samples) -> Samples:
    return samples.astype(np.float32) / np.float32(SCALE)


class CompactStream:
    def __init__(self, fmt: PcmFormat) -> None:
        self.decoder = PcmStreamDecoder(fmt)
        self.blocks: list[Int16Samples] = []  # joined parts, in order
        self.starts: list[int] = []  # the stream position of each block's first sample
        self.recent: list[Int16Samples] = []  # parts after the last block
        self.stored = 0  # samples in blocks
        self.lock = threading.Lock()  # fed on the event loop, read on the worker too

    @property
    def length(self) -> int:
        return self.decoder.length

    @property
    def levels(self) -> Levels:
        return self.decoder.levels

    def feed(self, data: bytes) -> None:
        with self.lock:
            self.decoder.feed(data)
            self._take()

    def _take(self) -> None:
        """Move what the decoder produced into int16 storage (it keeps no copy)."""
        if self.decoder.parts:
            self.recent.extend(to_int16(part) for part in self.decoder.parts)
            self.decoder.parts.clear()
            if sum(part.size for part in self.recent) >= BLOCK_SAMPLES:
                self._seal()

    def _seal(self) -> None:
        """The recent parts become one block."""
        if not self.recent:
            return
        block = np.concatenate(self.recent) if len(self.recent) > 1 else self.recent[0]
        self.recent = []
        self.blocks.append(block)
        self.starts.append(self.stored)
        self.stored += block.size

    def slice(self, start: int, end: int) -> Samples:
        """Samples ``start:end`` as float32 (only the blocks holding them are read)."""
        with self.lock:
            parts = self._parts(start, end)
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return to_float(np.concatenate(parts) if len(parts) > 1 else parts[0])

    def _parts(self, start: int, end: int) -> list[Int16Samples]:
        """Views of the stored samples ``start:end`` (blocks are never changed once made,
        so the views stay valid after the lock is released)."""
        self._seal()
        end = min(end, self.stored)
        if start >= end:
            return []
        first = bisect.bisect_right(self.starts, start) - 1
        parts: list[Int16Samples] = []
        for index in range(first, len(self.blocks)):
            offset = self.starts[index]
            if offset >= end:
                break
            block = self.blocks[index]
            parts.append(block[max(0, start - offset) : end - offset])
        return parts

    def newest_pcm(self, count: int) -> bytes:
        """The last ``count`` stored samples as s16le, read from the parts as they are
        (no joining: a remote engine takes each frame's new samples as they arrive)."""
        with self.lock:
            stored = [*self.blocks, *self.recent]
        pieces: list[bytes] = []
        for part in reversed(stored):
            if count <= 0:
                break
            taken = part[-count:] if part.size > count else part
            pieces.append(taken.astype("<i2").tobytes())
            count -= taken.size
        return b"".join(reversed(pieces))

    def finish(self) -> Samples:
        """The whole stream as float32; BadAudio when a partial frame is left over."""
        with self.lock:
            self.decoder.finish()
            self._take()
        return self.slice(0, self.length)

    @property
    def held_bytes(self) -> int:
        with self.lock:
            return sum(part.nbytes for part in (*self.blocks, *self.recent))
