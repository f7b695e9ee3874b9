"""Turn what a client sent into 16 kHz mono float32 samples, the only input the engine takes.

Files (WAV, FLAC, MP3, OGG, ...) are decoded with PyAV, which faster-whisper already
depends on; raw PCM is converted here and resampled with PyAV's resampler.
"""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt
from faster_whisper.audio import decode_audio

from whisperd.protocol import PCM_ENCODINGS, PcmFormat

SAMPLE_RATE = 16000
Samples = npt.NDArray[np.float32]


class BadAudio(Exception):
    """Audio that cannot be decoded; the message is meant for the user."""


def decode_file(data: bytes) -> Samples:
    if not data:
        raise BadAudio("the audio file is empty")
    try:
        samples = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except (av.error.FFmpegError, ValueError, IndexError, StopIteration) as exc:
        raise BadAudio(f"cannot decode the audio file: {exc}") from None
    return np.ascontiguousarray(samples, dtype=np.float32)


def decode_pcm(data: bytes, fmt: PcmFormat) -> Samples:
    if len(data) % fmt.frame_bytes:
        raise BadAudio(
            f"{len(data)} bytes of {fmt.encoding} PCM with {fmt.channels} channel(s) is not a "
            f"whole number of {fmt.frame_bytes}-byte frames"
        )
    if fmt.encoding == "s16le":
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        assert PCM_ENCODINGS[fmt.encoding] == 4
        samples = np.nan_to_num(np.frombuffer(data, dtype="<f4").astype(np.float32))
        samples = np.clip(samples, -1.0, 1.0)
    if fmt.channels > 1:
        samples = samples.reshape(-1, fmt.channels).mean(axis=1, dtype=np.float32)
    return resample(samples, fmt.sample_rate)


def resample(samples: Samples, rate: int) -> Samples:
    if rate == SAMPLE_RATE or samples.size == 0:
        return np.ascontiguousarray(samples, dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def rms(samples: Samples) -> float:
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
