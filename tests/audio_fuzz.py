"""Seed files of every accepted format, and seeded mutations of them, for the fuzz tests.

The seeds are encoded here with PyAV from a synthetic signal (a chirp with noise), so the
suite needs no recording; ``mp3_frame_layout_switch`` rebuilds the MP3 that crashed the
daemon from the shared hotwords.mp3.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

# Formats and codecs the decoder refuses (not in its whitelists), same shape as SEEDS.
REFUSED: dict[str, tuple[str, str, int, str]] = {
    "wav_adpcm_ms": ("wav", "adpcm_ms", 16000, "mono"),
    "wav_mp2": ("wav", "mp2", 16000, "mono"),
    "au": ("au", "pcm_s16be", 16000, "mono"),
    "caf": ("caf", "pcm_s16le", 16000, "mono"),
}

# name: (container format, encoder, sample rate, layout)
SEEDS: dict[str, tuple[str, str, int, str]] = {
    "wav": ("wav", "pcm_s16le", 16000, "mono"),
    "wav_stereo_44k": ("wav", "pcm_s16le", 44100, "stereo"),
    "flac": ("flac", "flac", 44100, "stereo"),
    "mp3": ("mp3", "libmp3lame", 44100, "stereo"),
    "ogg_vorbis": ("ogg", "vorbis", 44100, "stereo"),
    "ogg_opus": ("ogg", "libopus", 48000, "stereo"),
    "webm_opus": ("webm", "libopus", 48000, "mono"),
    "m4a_aac": ("ipod", "aac", 44100, "stereo"),
    "aiff": ("aiff", "pcm_s16be", 22050, "mono"),
}


def signal(rate: int, channels: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A rising chirp with a little noise, shape (channels, samples), float32."""
    t = np.arange(int(rate * seconds)) / rate
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 400 * t) * t)
    noise = np.random.default_rng(seed).normal(0, 0.02, (channels, t.size))
    return (chirp + noise).astype(np.float32)


def encode(name: str, seconds: float = 2.0) -> bytes:
    container_format, codec, rate, layout = SEEDS.get(name) or REFUSED[name]
    channels = 2 if layout == "stereo" else 1
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)  # type: ignore[call-overload]
        stream.codec_context.options = {"strict": "experimental"}  # the native vorbis encoder
        samples = signal(rate, channels, seconds)
        encoder_format = stream.codec_context.format.name
        size = stream.codec_context.frame_size or 1024
        for start in range(0, samples.shape[1], size):
            part = samples[:, start : start + size]
            frame = av.AudioFrame.from_ndarray(
                to_format(part, encoder_format), format=encoder_format, layout=layout
            )
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def to_format(part: np.ndarray, name: str) -> np.ndarray:
    """``part`` (float, one row per channel) in the encoder's sample format."""
    base = name.rstrip("p")
    scale = {"s16": 32767, "s32": 2**31 - 1}.get(base)
    dtype = {"s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64}[base]
    values = np.clip(part, -1, 1) * scale if scale else part
    if name.endswith("p"):
        return np.ascontiguousarray(values.astype(dtype))
    return np.ascontiguousarray(values.T.astype(dtype)).reshape(1, -1)


@dataclass(frozen=True)
class Case:
    seed: str
    how: str
    data: bytes


def mutations(seeds: dict[str, bytes], per_seed: int, rng_seed: int) -> Iterator[Case]:
    """``per_seed`` mutants of each seed: byte flips, truncations, insertions, deletions,
    duplicated spans and zeroed spans, always the same for the same ``rng_seed``."""
    rng = np.random.default_rng(rng_seed)
    for name, original in seeds.items():
        for _ in range(per_seed):
            how = str(rng.choice(["flip", "truncate", "insert", "delete", "duplicate", "zero"]))
            yield Case(name, how, mutate(original, how, rng))


def mutate(original: bytes, how: str, rng: np.random.Generator) -> bytes:
    data = bytearray(original)
    size = len(data)
    at = int(rng.integers(0, size))
    span = int(rng.integers(1, max(2, size // 20)))
    if how == "flip":
        # the first kilobyte holds the headers: hit it more often than its share
        for _ in range(int(rng.integers(1, 9))):
            position = int(rng.integers(0, min(size, 1024) if rng.random() < 0.5 else size))
            data[position] = int(rng.integers(0, 256))
    elif how == "truncate":
        del data[at:]
    elif how == "insert":
        data[at:at] = rng.bytes(span)
    elif how == "delete":
        del data[at : at + span]
    elif how == "duplicate":
        data[at:at] = data[at : at + span]
    else:
        data[at : at + span] = bytes(len(data[at : at + span]))
    return bytes(data)


def mp3_frame_layout_switch(hotwords: Path) -> bytes:
    """hotwords.mp3 with byte 2856 set to 0xf1: one frame switches from stereo to mono,
    which crashed FFmpeg's resampler inside the daemon (SIGSEGV)."""
    data = bytearray(hotwords.read_bytes())
    data[2856] = 0xF1
    return bytes(data)


def wav_claiming(rate: int, data_bytes: int) -> bytes:
    """A 16-bit mono WAV whose header says ``rate`` Hz, with ``data_bytes`` of silence."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", data_bytes) + bytes(data_bytes)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def flac_claiming_samples(flac: bytes, total: int) -> bytes:
    """``flac`` with STREAMINFO's total-samples field (the low 36 bits of bytes 18..25)
    set to ``total``: a header that lies about the length."""
    data = bytearray(flac)
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "STREAMINFO must come first"
    (word,) = struct.unpack(">Q", data[18:26])
    word = (word & ~((1 << 36) - 1)) | total
    data[18:26] = struct.pack(">Q", word)
    return bytes(data)


def silent_flac(seconds: float, rate: int = 8000) -> bytes:
    """``seconds`` of digital silence as FLAC: six hours make about 45 KB."""
    buffer = io.BytesIO()
    block = 1 << 14
    silence = np.zeros((1, block), dtype=np.int16)
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")  # type: ignore[call-overload]
        for start in range(0, int(seconds * rate), block):
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()
