"""whisperctl's reading of standard input for --live: raw PCM or a WAV stream's header."""

from __future__ import annotations

import io
import os
import struct

import pytest

from whisperd.stdin_audio import ByteReader, PcmSpec, StdinFormatError, read_format


def reader_of(data: bytes) -> ByteReader:
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    return ByteReader(io.FileIO(read_end, "rb"))


def wav_header(tag: int, channels: int, rate: int, bits: int, extra: bytes = b"") -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8, 4, bits)
    fmt += extra
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd size: padded
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + chunks + b"data\xff\xff\xff\xff"


def rest(reader: ByteReader) -> bytes:
    out = b""
    while chunk := reader.read():
        out += chunk
    return out


def test_raw_pcm_is_s16le_16k_mono_and_nothing_is_lost() -> None:
    reader = reader_of(b"\x01\x02\x03\x04\x05")
    assert read_format(reader) == PcmSpec("s16le", 16000, 1)
    assert rest(reader) == b"\x01\x02\x03\x04\x05"


def test_wav_stream_gives_its_format_and_the_data_after_the_header() -> None:
    reader = reader_of(wav_header(1, 2, 44100, 16) + b"\x10\x20")
    assert read_format(reader) == PcmSpec("s16le", 44100, 2)
    assert rest(reader) == b"\x10\x20"


def test_float_and_extensible_wav() -> None:
    assert read_format(reader_of(wav_header(3, 1, 48000, 32))) == PcmSpec("f32le", 48000, 1)
    extensible = struct.pack("<HHI", 22, 16, 3) + struct.pack("<H", 3) + b"\x00" * 14
    spec = read_format(reader_of(wav_header(0xFFFE, 1, 8000, 32, extensible)))
    assert spec == PcmSpec("f32le", 8000, 1)


@pytest.mark.parametrize(
    "data",
    [
        wav_header(1, 1, 16000, 8),  # 8-bit
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # ends in the header
        b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00",  # no fmt
        b"RIFF\x00\x00\x00\x00WAVEjunk\xff\xff\xff\x7f",  # absurd chunk
    ],
)
def test_bad_wav_headers_are_refused_with_a_message(data: bytes) -> None:
    with pytest.raises(StdinFormatError):
        read_format(reader_of(data))
