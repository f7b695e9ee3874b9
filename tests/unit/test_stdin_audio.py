"""whisperctl's reading of standard input for --live: raw PCM or a WAV stream's header."""

from __future__ import annotations

import io
import json
import os
import struct
from typing import Any

import pytest

from whisperd.cli import Shaping
from whisperd.config import TextConfig
from whisperd.stdin_audio import (
    ByteReader,
    PcmSpec,
    StdinFormatError,
    read_format,
    transcribe_live,
    transcribe_whole,
)
from whisperd.text import Shaper


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


# -- the [text] rules on standard input ---------------------------------------------------


class FakeStdinStream:
    """The client's stream: commits ``pieces`` (the last one final) when finished."""

    def __init__(self, pieces: list[str], on_commit: Any = None) -> None:
        self.pieces = pieces
        self.on_commit = on_commit

    def send(self, pcm: bytes) -> None:
        pass

    def cancel(self) -> None:
        pass

    def finish(self) -> dict[str, Any]:
        for seq, text in enumerate(self.pieces):
            final = seq == len(self.pieces) - 1
            if self.on_commit is not None:
                self.on_commit({"type": "commit", "seq": seq, "text": text, "final": final})
        text = " ".join(p for p in self.pieces if p)
        return {"type": "result", "text": text, "segments": [{"text": p} for p in self.pieces]}


class FakeStdinClient:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def start_live(self, on_commit: Any, *args: Any) -> FakeStdinStream:
        return FakeStdinStream(self.pieces, on_commit)

    def start_file(self, options: dict[str, Any]) -> FakeStdinStream:
        return FakeStdinStream(self.pieces)


PIECES = ["hello comma", "world new line bye period", "wrong scratch that", "ok"]
SPOKEN = TextConfig(spoken_punctuation=True)


def live(pieces: list[str], shaper: Shaper | None, as_json: bool = False) -> str:
    out = io.StringIO()
    client = FakeStdinClient(pieces)
    assert transcribe_live(client, {}, reader_of(b"\x00" * 64).stream, out, as_json, shaper) == 0  # type: ignore[arg-type]
    return out.getvalue()


def test_live_prints_each_piece_as_the_rules_make_it() -> None:
    assert live(PIECES, Shaper(SPOKEN.rules())) == "hello,\nworld\nBye.\nOk\n"
    assert live(PIECES, None) == "".join(p + "\n" for p in PIECES)  # --raw


def test_live_scratch_that_cannot_unprint_a_line_but_the_json_result_is_right() -> None:
    lines = live(["bad words", "scratch that", "good words"], Shaper(SPOKEN.rules()), True)
    events = [json.loads(line) for line in lines.splitlines()]
    assert [e["text"] for e in events[:3]] == ["bad words", "", "good words"]
    assert events[0]["raw_text"] == "bad words"
    assert events[-1]["type"] == "result" and events[-1]["text"] == "good words"
    assert events[-1]["raw_text"] == "bad words scratch that good words"


def test_whole_stdin_is_shaped_like_a_file() -> None:
    out = io.StringIO()
    client = FakeStdinClient(["hello comma", "world new line bye period"])
    shaping = Shaping(SPOKEN, raw=False)
    code = transcribe_whole(client, {}, io.BytesIO(b"x"), out, False, shaping.apply)  # type: ignore[arg-type]
    assert code == 0 and out.getvalue() == "hello, world\nBye.\n"
    out = io.StringIO()
    raw = Shaping(SPOKEN, raw=True)
    transcribe_whole(client, {}, io.BytesIO(b"x"), out, False, raw.apply)  # type: ignore[arg-type]
    assert out.getvalue() == "hello comma world new line bye period\n"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00", "FLAC"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE", "MP3"),
        (b"OggS\x00\x02\x00\x00\x00\x00\x00\x00", "Ogg"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81", "Matroska/WebM"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "MP4/M4A"),
    ],
)
def test_a_compressed_file_on_stdin_is_refused_with_what_it_is(head: bytes, kind: str) -> None:
    """Its bytes would be streamed as samples: noise, no text, and exit 0."""
    with pytest.raises(StdinFormatError, match=f"is a {kind} file.*drop --live"):
        read_format(reader_of(head + os.urandom(64)))


def test_raw_pcm_that_starts_like_an_mp3_frame_is_still_pcm() -> None:
    """0xFFFB is also a sample of -1025: an untagged MP3 is not guessed."""
    reader = reader_of(b"\xff\xfb\x90\x64" + bytes(8))
    assert read_format(reader) == PcmSpec("s16le", 16000, 1)
