"""``whisperctl transcribe -`` and ``whisperctl transcribe --live -``: audio from stdin.

- ``-``: the whole of standard input is one audio file (any format the daemon reads).
- ``--live -``: raw PCM, signed 16-bit little endian, 16 kHz, mono (what
  ``arecord -f S16_LE -r 16000 -c 1`` writes), or a WAV stream (recognised by its RIFF
  header: its own rate, channels and 16-bit or float samples). It is sent to the daemon as
  it arrives, and each piece of text is printed on its own line as soon as it is final.

Standard library only: whisperctl must start fast (no numpy).
"""

from __future__ import annotations

import os
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from whisperd.client import EXIT_OK, EXIT_USAGE, Client, ClientError
from whisperd.text import Erase, Shaper, apply_actions

READ_BYTES = 1 << 16
WAVE_PCM = 1
WAVE_FLOAT = 3
WAVE_EXTENSIBLE = 0xFFFE


class StdinFormatError(Exception):
    """The stream on stdin cannot be sent as PCM; the message says why."""


@dataclass(frozen=True)
class PcmSpec:
    encoding: str = "s16le"
    sample_rate: int = 16000
    channels: int = 1

    @property
    def frame_bytes(self) -> int:
        return (2 if self.encoding == "s16le" else 4) * self.channels


class ByteReader:
    """Reads what is there (os.read semantics), with bytes put back in front."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream  # kept: the descriptor lives as long as its file object
        self.fd = stream.fileno()
        self.pushed = b""

    def read(self, size: int = READ_BYTES) -> bytes:
        if self.pushed:
            data, self.pushed = self.pushed[:size], self.pushed[size:]
            return data
        return os.read(self.fd, size)

    def exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.read(size - len(data))
            if not chunk:
                break
            data += chunk
        return data


# How compressed files begin: --live would read their bytes as samples (noise, no text).
COMPRESSED = (
    (0, b"fLaC", "FLAC"),
    (0, b"ID3", "MP3"),
    (0, b"OggS", "Ogg"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (4, b"ftyp", "MP4/M4A"),
    (0, b"#!AMR", "AMR"),
)


def compressed_kind(head: bytes) -> str | None:
    """The kind of compressed file ``head`` (its first 12 bytes) begins, if any. Only
    signatures no raw PCM plausibly begins with (an MP3 without its ID3 tag begins with
    a frame sync, 0xFFFx, which is also a sample near -1000: not refused)."""
    for offset, magic, kind in COMPRESSED:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None


def read_format(reader: ByteReader) -> PcmSpec:
    """Raw s16le 16 kHz mono, unless the stream starts with a RIFF/WAVE header; a
    compressed file is refused (StdinFormatError), since its bytes are no samples."""
    head = reader.exactly(12)
    compressed = compressed_kind(head)
    if compressed is not None:
        raise StdinFormatError(
            f"standard input is a {compressed} file: --live takes raw 16-bit PCM or a WAV "
            "stream; to transcribe a file, drop --live (whisperctl transcribe -)"
        )
    if not (head[:4] == b"RIFF" and head[8:12] == b"WAVE"):
        reader.pushed = head + reader.pushed
        return PcmSpec()
    spec: PcmSpec | None = None
    while True:
        chunk = reader.exactly(8)
        if len(chunk) < 8:
            raise StdinFormatError("the WAV stream ends before its data")
        kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"data":
            if spec is None:
                raise StdinFormatError("the WAV stream has no fmt chunk before its data")
            return spec  # the data runs to the end of the stream, whatever its size says
        if size > 1 << 20:
            raise StdinFormatError(f"a WAV header chunk of {size} bytes is not plausible")
        body = reader.exactly(size + (size & 1))
        if kind == b"fmt ":
            spec = _wav_spec(body)


def _wav_spec(body: bytes) -> PcmSpec:
    if len(body) < 16:
        raise StdinFormatError("the WAV fmt chunk is too short")
    tag, channels, rate = struct.unpack("<HHI", body[:8])
    bits = struct.unpack("<H", body[14:16])[0]
    if tag == WAVE_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]
    if tag == WAVE_PCM and bits == 16:
        encoding = "s16le"
    elif tag == WAVE_FLOAT and bits == 32:
        encoding = "f32le"
    else:
        raise StdinFormatError(
            f"WAV with format {tag} and {bits}-bit samples: --live takes 16-bit PCM or "
            "32-bit float (convert with sox or ffmpeg, or drop --live)"
        )
    return PcmSpec(encoding, rate, channels)


class LinePrinter:
    """Prints each committed piece on its own line as soon as it comes (reader thread).

    With a ``Shaper`` (the ``[text]`` rules, unless ``--raw``) each piece is printed as
    the rules make it: a spoken new line breaks the line, words that may begin a phrase
    wait for the next piece. A line once printed cannot be taken back: "scratch that"
    drops the words of its piece said before it and words held back, but not lines
    already printed; ``--json``'s result ``text`` is the text with everything erased
    (``raw_text`` the model's)."""

    def __init__(self, out: TextIO, as_json: bool, shaper: Shaper | None = None) -> None:
        self.out = out
        self.as_json = as_json
        self.shaper = shaper
        self.shaped = ""  # the whole text as the rules made it, erasures applied
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        import json

        with self.lock:  # the Shaper is used by one thread at a time, in order
            event = self._shape(event)
            text = str(event.get("text") or "").strip()
            if self.as_json:
                self.out.write(json.dumps(event, ensure_ascii=False) + "\n")
            elif text:
                self.out.write(text + "\n")
            self.out.flush()

    def _shape(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.shaper is None:
            return event
        raw = str(event.get("text") or "")
        if event.get("type") == "result":
            return {**event, "text": self.shaped, "raw_text": raw}
        if event.get("type") != "commit":
            return event
        actions = self.shaper.feed(raw.strip(), final=bool(event.get("final")))
        self.shaped = apply_actions(self.shaped, actions)
        piece = apply_actions("", [a for a in actions if not isinstance(a, Erase)])
        return {**event, "text": piece.strip(" "), "raw_text": raw}


def transcribe_live(
    client: Client,
    options: dict[str, Any],
    stdin: BinaryIO,
    out: TextIO,
    as_json: bool = False,
    shaper: Shaper | None = None,
    on_result: Callable[[dict[str, Any]], object] | None = None,
) -> int:
    """Stream stdin live; ``on_result`` sees the final result (whisperctl's checks)."""
    reader = ByteReader(stdin)
    try:
        spec = read_format(reader)
    except StdinFormatError as exc:
        print(f"whisperctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    printer = LinePrinter(out, as_json, shaper)
    stream = client.start_live(printer, spec.sample_rate, spec.channels, spec.encoding, options)
    rest = b""
    try:
        while data := reader.read():
            data = rest + data
            whole = len(data) - len(data) % spec.frame_bytes
            rest = data[whole:]
            if whole:
                stream.send(data[:whole])
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the stream like EOF: the last piece is still printed
    except BaseException:
        stream.cancel()
        raise
    if rest:
        print(
            f"whisperctl: {len(rest)} bytes of an incomplete last frame left out", file=sys.stderr
        )
    result = stream.finish()
    if on_result is not None:
        on_result(result)
    if as_json:
        printer({k: v for k, v in result.items()})
    return EXIT_OK


Shape = Callable[[dict[str, Any]], dict[str, Any]]


def transcribe_whole(
    client: Client,
    options: dict[str, Any],
    stdin: BinaryIO,
    out: TextIO,
    as_json: bool = False,
    shape: Shape | None = None,
) -> int:
    """The whole of stdin is one audio file; ``shape`` applies the ``[text]`` rules to
    its result as to a file's."""
    import json

    data = stdin.read()
    stream = client.start_file(options)
    stream.send(data)
    try:
        result = stream.finish()
    except ClientError as exc:
        if exc.code not in ("bad_audio", "audio_too_large"):
            raise
        print(f"whisperctl: standard input: {exc.message}", file=sys.stderr)
        return 1
    if shape is not None:
        result = shape(result)
    if as_json:
        out.write(json.dumps({"file": "-", **result}, ensure_ascii=False) + "\n")
    else:
        out.write(str(result["text"]) + "\n")
    out.flush()
    return EXIT_OK
