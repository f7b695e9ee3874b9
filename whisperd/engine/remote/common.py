"""What both remote clients share: the typed failure, the bounds, the token, the audio
they send and the result they build.

Whatever a remote answers is hostile input, like a client's bytes: its answer is read up
to ``MAX_ANSWER_BYTES`` and refused past it, parsed strictly, and only text, times and a
language are taken from it. The token is read from its file at each request (it can be
replaced without a restart) and never logged or put in an error message.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whisperd.engine.result import Segment, Transcription, joined_text, segment
from whisperd.engine.samples import SAMPLE_RATE

if TYPE_CHECKING:
    from whisperd.engine.samples import Samples

# An answer is text and times: 4 MiB is hours of verbose_json segments.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
MAX_TOKEN_BYTES = 4096


class RemoteUnavailable(Exception):
    """The remote engine did not give a usable answer: down, slow, refusing, or answering
    something that is not a transcription. ``reason`` is a short word for logs and tests
    (refused, timeout, http_status, redirect, garbage, too_large, dropped, token)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_token(path: str) -> str | None:
    """The bearer token in ``path`` (surrounding whitespace removed); None without a path."""
    if not path:
        return None
    try:
        data = Path(path).expanduser().read_bytes()[: MAX_TOKEN_BYTES + 1]
    except OSError as exc:
        raise RemoteUnavailable(
            "token", f"cannot read daemon.remote_token_file: {exc.strerror or exc}"
        ) from None
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise RemoteUnavailable("token", "daemon.remote_token_file is not ASCII text") from None
    if not token or len(data) > MAX_TOKEN_BYTES or any(c.isspace() for c in token):
        raise RemoteUnavailable(
            "token", "daemon.remote_token_file must hold one token (no spaces, 4 KiB at most)"
        )
    return token


def pcm16(samples: Samples) -> bytes:
    """16 kHz float samples as signed 16-bit little-endian PCM (what both protocols carry:
    a 16-bit WAV of a 16-bit source gives back exactly the source's samples)."""
    from whisperd.daemon.pcmstore import to_int16

    return to_int16(samples).astype("<i2").tobytes()


def wav_bytes(samples: Samples) -> bytes:
    """The decoded audio as a 16 kHz mono 16-bit WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(pcm16(samples))
    return out.getvalue()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# A language as remotes name it ("en", "en-US", "english"); anything else is dropped.
LANGUAGE = re.compile(r"[A-Za-z]{1,16}(?:[-_][A-Za-z0-9]{1,8}){0,2}")
_NOT_TEXT = ("Cc", "Cs")  # control characters; surrogates outside a pair


def clean_text(text: str) -> str:
    """A remote's text with every control character (C0, DEL, C1: escape sequences,
    bells, NULs, backspaces, carriage returns) and lone surrogate (JSON's "\\ud800", which
    no UTF-8 output can carry) made a space, and whitespace runs made one space: a remote
    must not reach a user's terminal or typed text with anything but printable
    characters. Printable Unicode (accents, CJK, emoji) is kept as sent."""
    spaced = "".join(" " if unicodedata.category(c) in _NOT_TEXT else c for c in text)
    return " ".join(spaced.split())


def answer_segments(raw: Any, duration: float) -> list[Segment] | None:
    """The remote's segments as whisperd's, or None when ``raw`` is not a list of them."""
    if not isinstance(raw, list):
        return None
    segments: list[Segment] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return None
        start, end = _number(item.get("start")), _number(item.get("end"))
        if start is None or end is None or not 0 <= start <= end <= duration + 30:
            return None
        segments.append(segment(start, end, clean_text(item["text"])))
    return segments


def transcription(
    text: str, segments: list[Segment] | None, language: str, duration: float, path: str
) -> Transcription:
    """A result from a remote's text and, when it sent them, segments (their texts
    already cleaned by ``answer_segments``). Without segments (Wyoming, OpenAI's plain
    json) the text is one segment over the whole audio."""
    text = clean_text(text)
    language = language if LANGUAGE.fullmatch(language) else ""
    if segments is None:
        segments = [segment(0.0, duration, text)] if text else []
    elif joined_text(segments):
        text = joined_text(segments)
    return Transcription(text, segments, language, duration, None, path)
