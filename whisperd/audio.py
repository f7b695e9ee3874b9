"""Turn what a client sent into 16 kHz mono float32 samples, the only input the engine takes.

Files (WAV, FLAC, MP3, Ogg, WebM, M4A, ...) come from clients and are decoded by FFmpeg
(PyAV) in a separate, confined process (whisperd/decoding/): a hostile file can crash or
exhaust only that process. Raw PCM needs no demuxer or decoder: it is converted here with
numpy, and resampled with PyAV's resampler fed frames of a fixed layout made here.
"""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np

from whisperd.decoding import sandbox
from whisperd.decoding.errors import AudioTooLarge as AudioTooLarge  # re-exported
from whisperd.decoding.errors import BadAudio as BadAudio
from whisperd.engine.samples import SAMPLE_RATE as SAMPLE_RATE  # re-exported
from whisperd.engine.samples import Samples as Samples
from whisperd.protocol import PcmFormat

# daemon.max_audio_seconds' default: the daemon passes its configured value.
DEFAULT_MAX_SECONDS = 4 * 3600.0


def decode_file(
    data: bytes,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    cancelled: Callable[[], bool] | None = None,
) -> Samples:
    """An audio file from a client as 16 kHz mono float32, decoded in the decoder process.

    BadAudio (``.code`` "bad_audio") when it cannot be decoded, whatever the reason;
    AudioTooLarge ("audio_too_large") past ``max_seconds``, found from its header or as
    soon as decoding passes it; sandbox.Cancelled ("cancelled") once ``cancelled()``.
    """
    if not data:
        raise BadAudio("the audio file is empty")
    chunks = sandbox.decode(data, max_seconds, cancelled)
    samples = np.empty(sum(len(c) for c in chunks) // 2, dtype=np.float32)
    position = 0
    chunks.reverse()
    while chunks:  # chunk by chunk, so the s16 copy is freed as the float32 one fills
        part = np.frombuffer(chunks.pop(), dtype="<i2")
        samples[position : position + part.size] = part
        position += part.size
    samples /= 32768.0
    return samples


def prepare_file_decoder() -> None:
    """Start a decoder process ahead of a file (cheap; a no-op when one is ready)."""
    sandbox.prepare()


def release_file_decoder() -> None:
    """End the decoder process kept ready (the next file starts one on demand)."""
    sandbox.release()


def decode_pcm(data: bytes, fmt: PcmFormat) -> Samples:
    """All of a PCM buffer at once (the streaming decoder does the work)."""
    decoder = PcmStreamDecoder(fmt)
    decoder.feed(data)
    return decoder.finish()


def resample(samples: Samples, rate: int) -> Samples:
    if rate == SAMPLE_RATE or samples.size == 0:
        return np.ascontiguousarray(samples, dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    return _frames_to_samples(resampler.resample(frame) + resampler.resample(None))


def rms(samples: Samples) -> float:
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


class PcmStreamDecoder:
    """Decodes PCM as it arrives, so a dictation stream is ready the moment it ends.

    Frames may be split anywhere by the client; a partial sample frame is kept for the next
    chunk. The resampler keeps its state across chunks, so chunking leaves no seams.
    """

    def __init__(self, fmt: PcmFormat) -> None:
        self.fmt = fmt
        self.rest = b""
        self.parts: list[Samples] = []
        self.length = 0
        self.fed = 0
        self.resampler = (
            None
            if fmt.sample_rate == SAMPLE_RATE
            else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        )
        self.levels = Levels()

    def feed(self, data: bytes) -> None:
        buffer = self.rest + data
        whole = len(buffer) - len(buffer) % self.fmt.frame_bytes
        self.rest = buffer[whole:]
        if whole:
            self._append(_mono(buffer[:whole], self.fmt))

    def _append(self, samples: Samples) -> None:
        if self.resampler is not None:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = self.fmt.sample_rate
            frame.pts = self.fed
            self.fed += samples.size
            samples = _frames_to_samples(self.resampler.resample(frame))
        if samples.size:
            self.parts.append(samples)
            self.length += samples.size
            self.levels.add(samples)

    def audio(self) -> Samples:
        """Everything decoded so far (one array; cheap to call repeatedly)."""
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.zeros(0, dtype=np.float32)

    def finish(self) -> Samples:
        if self.rest:
            raise BadAudio(
                f"the PCM audio is not a whole number of {self.fmt.frame_bytes}-byte frames "
                f"({self.fmt.encoding}, {self.fmt.channels} channel(s)): {len(self.rest)} "
                "byte(s) left over"
            )
        if self.resampler is not None:
            tail = _frames_to_samples(self.resampler.resample(None))
            if tail.size:
                self.parts.append(tail)
                self.length += tail.size
                self.levels.add(tail)
            self.resampler = None
        return self.audio()


def _mono(data: bytes, fmt: PcmFormat) -> Samples:
    if fmt.encoding == "s16le":
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = np.nan_to_num(np.frombuffer(data, dtype="<f4").astype(np.float32))
        samples = np.clip(samples, -1.0, 1.0)
    if fmt.channels > 1:
        samples = samples.reshape(-1, fmt.channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32)


def _frames_to_samples(frames: list[av.AudioFrame]) -> Samples:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(
        np.concatenate([f.to_ndarray().reshape(-1) for f in frames]), dtype=np.float32
    )


LEVEL_FRAME = int(0.03 * SAMPLE_RATE)
# A frame 20 dB under the loudest of the utterance is a pause: room noise sits 30 dB or
# more under speech with any usable microphone, while every spoken word peaks within
# 15 dB of the utterance's loudest.
PAUSE_FRACTION = 0.1


class Levels:
    """The loudness (RMS) of each 30 ms frame of a stream, kept as the audio arrives, so
    that finding where speech stopped costs no pass over the whole recording."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._rest = np.zeros(0, dtype=np.float32)

    def add(self, samples: Samples) -> None:
        buffer = np.concatenate([self._rest, samples]) if self._rest.size else samples
        count = buffer.size // LEVEL_FRAME
        if count:
            frames = buffer[: count * LEVEL_FRAME].reshape(count, LEVEL_FRAME)
            energy = np.mean(np.square(frames, dtype=np.float64), axis=1)
            self.values.extend(np.sqrt(energy).tolist())
        self._rest = buffer[count * LEVEL_FRAME :]

    def speech_end(self, start: int, floor: float) -> int | None:
        """Where speech after sample ``start`` last stopped: the end of its last frame
        louder than a tenth of its loudest (and than ``floor``); None when nothing after
        ``start`` is louder than ``floor``."""
        first = -(-start // LEVEL_FRAME)
        values = self.values[first:]
        peak = max(values, default=0.0)
        if peak < floor:
            return None
        threshold = max(floor, peak * PAUSE_FRACTION)
        last = max(i for i, value in enumerate(values) if value >= threshold)
        return (first + last + 1) * LEVEL_FRAME


def quiet_cut(samples: Samples, start: int, end: int, search_seconds: float) -> int:
    """Where to cut a stream: the quietest 30 ms in its last ``search_seconds`` seconds.

    Pauses between words are the quiet places, so a cut there splits no word.
    """
    frame = int(0.03 * SAMPLE_RATE)
    low = max(start, end - int(search_seconds * SAMPLE_RATE))
    count = (end - low) // frame
    if count < 1:
        return end
    region = samples[low : low + count * frame].reshape(count, frame)
    energy = np.mean(np.square(region, dtype=np.float64), axis=1)
    quietest = int(np.argmin(energy))
    return low + quietest * frame + frame // 2
