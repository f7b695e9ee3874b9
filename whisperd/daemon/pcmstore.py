"""A dictation stream held compactly: 16-bit samples at 16 kHz, 2 bytes a sample.

``PcmStreamDecoder`` (whisperd/audio.py) turns the client's PCM into 16 kHz mono float32
as it arrives; this keeps what it decodes as int16 instead (half of float32, and the
input's own precision for s16le, the encoding every client of ours sends), and gives
float32 back only for the stretch a window, a draft or the final pass needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from whisperd.audio import PcmStreamDecoder
from whisperd.protocol import PcmFormat

if TYPE_CHECKING:
    from whisperd.audio import Levels, Samples

SCALE = 32768.0
Int16Samples = npt.NDArray[np.int16]


def to_int16(samples: Samples) -> Int16Samples:
    scaled = np.rint(np.clip(samples, -1.0, 1.0) * SCALE)
    out: Int16Samples = np.clip(scaled, -SCALE, SCALE - 1).astype(np.int16)
    return out


def to_float(samples: Int16Samples) -> Samples:
    return samples.astype(np.float32) / np.float32(SCALE)


class CompactStream:
    def __init__(self, fmt: PcmFormat) -> None:
        self.decoder = PcmStreamDecoder(fmt)
        self.parts: list[Int16Samples] = []

    @property
    def length(self) -> int:
        return self.decoder.length

    @property
    def levels(self) -> Levels:
        return self.decoder.levels

    def feed(self, data: bytes) -> None:
        self.decoder.feed(data)
        self._take()

    def _take(self) -> None:
        """Move what the decoder produced into int16 storage (it keeps no copy)."""
        if self.decoder.parts:
            self.parts.extend(to_int16(part) for part in self.decoder.parts)
            self.decoder.parts.clear()

    def _joined(self) -> Int16Samples:
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.zeros(0, dtype=np.int16)

    def slice(self, start: int, end: int) -> Samples:
        """Samples ``start:end`` as float32 (only that stretch is converted)."""
        return to_float(self._joined()[start:end])

    def audio(self) -> Samples:
        """Everything received so far as float32 (a live piece reads its context from it)."""
        return to_float(self._joined())

    def finish(self) -> Samples:
        """The whole stream as float32; BadAudio when a partial frame is left over."""
        self.decoder.finish()
        self._take()
        return to_float(self._joined())

    @property
    def held_bytes(self) -> int:
        return sum(part.nbytes for part in self.parts)
