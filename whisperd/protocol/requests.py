"""Typed requests: a decoded message in, a frozen dataclass out, or a ProtocolError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from whisperd.protocol.framing import (
    MAX_AUDIO_FRAME,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    PCM_ENCODINGS,
    ErrorCode,
    ProtocolError,
    RequestId,
    check_length,
)


@dataclass(frozen=True)
class PcmFormat:
    encoding: str
    sample_rate: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return PCM_ENCODINGS[self.encoding] * self.channels


# --- typed requests -----------------------------------------------------------------------

MAX_BEAM_SIZE = 20
TRANSCRIBE_OPTION_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "language": (str,),
    "beam_size": (int,),
    "without_timestamps": (bool,),
    "initial_prompt": (str,),
    "vad_filter": (bool,),
    "word_timestamps": (bool,),
    "fast_short_audio": (bool,),
    "vocabulary": (list,),
    "live": (bool,),  # PCM streams only: commit events while the audio streams in
}

# Words and names the model should expect (docs/text.md). Whisper reads at most 223
# prompt tokens of them, so longer lists only cost; each entry is a word or a short name.
MAX_VOCABULARY_ENTRIES: Final = 100
MAX_VOCABULARY_ENTRY_CHARS: Final = 64


@dataclass(frozen=True)
class Hello:
    id: RequestId
    version: int
    client: str


@dataclass(frozen=True)
class Simple:
    """ping, status, unload: a type and an id, nothing else."""

    id: RequestId
    type: str


@dataclass(frozen=True)
class Load:
    id: RequestId


@dataclass(frozen=True)
class Transcribe:
    id: RequestId
    format: str  # "file" or "pcm"
    pcm: PcmFormat | None
    options: dict[str, Any]


@dataclass(frozen=True)
class Audio:
    id: RequestId
    size: int


@dataclass(frozen=True)
class End:
    id: RequestId


@dataclass(frozen=True)
class Cancel:
    id: RequestId


Request = Hello | Simple | Load | Transcribe | Audio | End | Cancel


def _field(msg: dict[str, Any], name: str, kinds: tuple[type, ...], rid: RequestId) -> Any:
    if name not in msg:
        raise ProtocolError(ErrorCode.BAD_FIELD, f"missing field {name!r}", rid)
    value = msg[name]
    # bool is an int in Python; a JSON true must not pass for a number.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ProtocolError(
            ErrorCode.BAD_FIELD, f"field {name!r} must be {names}, got {value!r:.40}", rid
        )
    return value


def _request_id(msg: dict[str, Any]) -> RequestId:
    rid = msg.get("id")
    if rid is None or (isinstance(rid, str | int) and not isinstance(rid, bool)):
        if isinstance(rid, str) and len(rid) > 200:
            raise ProtocolError(ErrorCode.BAD_FIELD, "field 'id' is longer than 200 characters")
        return rid
    raise ProtocolError(ErrorCode.BAD_FIELD, "field 'id' must be a string, an integer or null")


def _pcm_format(msg: dict[str, Any], rid: RequestId) -> PcmFormat:
    encoding = _field(msg, "encoding", (str,), rid)
    if encoding not in PCM_ENCODINGS:
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"encoding {encoding!r} is not one of {', '.join(sorted(PCM_ENCODINGS))}",
            rid,
        )
    rate = _field(msg, "sample_rate", (int,), rid)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"sample_rate {rate} is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
            rid,
        )
    channels = _field(msg, "channels", (int,), rid)
    if not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError(
            ErrorCode.BAD_FIELD, f"channels {channels} is outside 1..{MAX_CHANNELS}", rid
        )
    return PcmFormat(encoding, rate, channels)


def _transcribe_options(msg: dict[str, Any], rid: RequestId) -> dict[str, Any]:
    raw = msg.get("options", {})
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_FIELD, "field 'options' must be an object", rid)
    options: dict[str, Any] = {}
    for name in raw:
        if name not in TRANSCRIBE_OPTION_TYPES:
            known = ", ".join(sorted(TRANSCRIBE_OPTION_TYPES))
            raise ProtocolError(
                ErrorCode.BAD_FIELD, f"unknown option {name!r:.40} (known: {known})", rid
            )
        options[name] = _field(raw, name, TRANSCRIBE_OPTION_TYPES[name], rid)
    beam = options.get("beam_size")
    if beam is not None and not 1 <= beam <= MAX_BEAM_SIZE:
        message = f"option 'beam_size' must be within 1..{MAX_BEAM_SIZE}"
        raise ProtocolError(ErrorCode.BAD_FIELD, message, rid)
    if "vocabulary" in options:
        options["vocabulary"] = check_vocabulary(options["vocabulary"], rid)
    return options


def check_vocabulary(value: list[Any], rid: RequestId = None) -> list[str]:
    """The ``vocabulary`` option checked: at most 100 entries of 1..64 characters, text
    without control characters (they would reach the model's prompt)."""
    if len(value) > MAX_VOCABULARY_ENTRIES:
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"option 'vocabulary' has {len(value)} entries; at most {MAX_VOCABULARY_ENTRIES}",
            rid,
        )
    for entry in value:
        if not isinstance(entry, str):
            raise ProtocolError(
                ErrorCode.BAD_FIELD, "option 'vocabulary' must be a list of strings", rid
            )
        if not entry.strip() or len(entry) > MAX_VOCABULARY_ENTRY_CHARS:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"each vocabulary entry must have 1..{MAX_VOCABULARY_ENTRY_CHARS} characters",
                rid,
            )
        if not entry.isprintable():
            raise ProtocolError(
                ErrorCode.BAD_FIELD, "vocabulary entries must not hold control characters", rid
            )
    return [str(entry) for entry in value]


def audio_size(msg: dict[str, Any], rid: RequestId) -> int:
    """The size of the binary frame an ``audio`` message announces: the one place it is
    checked. Over-size frames are fatal: the bytes cannot be skipped without reading them."""
    size = _field(msg, "size", (int,), rid)
    if size < 0:
        raise ProtocolError(ErrorCode.BAD_FIELD, "field 'size' must not be negative", rid)
    check_length(size, MAX_AUDIO_FRAME, "audio")
    return int(size)


def loose_request_id(msg: dict[str, Any]) -> RequestId:
    """The message's id when it is a valid one, else None (for errors about the frame)."""
    rid = msg.get("id")
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None


def parse_request(msg: dict[str, Any]) -> Request:
    """Turn a decoded message into a typed request, or raise a recoverable ProtocolError."""
    rid = _request_id(msg)
    kind = _field(msg, "type", (str,), rid)
    if kind == "hello":
        version = _field(msg, "version", (int,), rid)
        client = msg.get("client", "")
        return Hello(rid, version, client if isinstance(client, str) else "")
    if kind in ("ping", "status", "unload"):
        return Simple(rid, kind)
    if kind == "load":
        return Load(rid)
    if kind == "transcribe":
        fmt = _field(msg, "format", (str,), rid)
        if fmt not in ("file", "pcm"):
            raise ProtocolError(
                ErrorCode.BAD_FIELD, f"format must be 'file' or 'pcm', got {fmt!r:.40}", rid
            )
        pcm = _pcm_format(msg, rid) if fmt == "pcm" else None
        options = _transcribe_options(msg, rid)
        if options.get("live") and pcm is None:
            raise ProtocolError(ErrorCode.BAD_FIELD, "option 'live' needs format 'pcm'", rid)
        return Transcribe(rid, fmt, pcm, options)
    if kind == "audio":
        return Audio(rid, audio_size(msg, rid))
    if kind == "end":
        return End(rid)
    if kind == "cancel":
        return Cancel(rid)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r:.40}", rid)
