"""What the Wyoming front tells and accepts: the ``info`` answer to ``describe``, and a
``transcribe`` + ``audio-start`` turned into whisperd's own transcription request."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from whisperd import __version__
from whisperd.config import DaemonConfig
from whisperd.fronts import model_name
from whisperd.fronts.wyoming.events import WyomingError
from whisperd.protocol import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    PcmFormat,
    ProtocolError,
    Transcribe,
    check_vocabulary,
)

FASTER_WHISPER = Attribution(
    name="SYSTRAN faster-whisper", url="https://github.com/SYSTRAN/faster-whisper"
)
MAX_NAME_CHARS = 200
SAMPLE_WIDTH = 2  # bytes: Wyoming audio is signed little-endian integers; whisperd takes 16-bit


@functools.cache
def _all_languages() -> tuple[str, ...]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES)


def languages(name: str) -> list[str]:
    """English only for the ``.en`` models (by Whisper's naming), else every language
    Whisper knows."""
    return ["en"] if name.endswith(".en") else list(_all_languages())


def info(config: DaemonConfig, streaming: bool) -> Info:
    name = model_name(config.model)
    model = AsrModel(
        name=name,
        attribution=FASTER_WHISPER,
        installed=True,
        description=f"Whisper {name} (faster-whisper), kept warm by whisperd",
        version=None,
        languages=languages(name),
    )
    program = AsrProgram(
        name="whisperd",
        attribution=Attribution(name="whisperd", url=""),
        installed=True,
        description="whisperd: socket-activated speech to text that exits when idle",
        version=__version__,
        models=[model],
        supports_transcript_streaming=streaming,
    )
    return Info(asr=[program])


@dataclass
class Asked:
    """What a ``transcribe`` event asked for, checked (the next stream's options)."""

    language: str | None = None
    vocabulary: list[str] | None = None


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME_CHARS):
        raise WyomingError("bad_field", f"transcribe's {key!r} must be a short string")
    return value or None


def parse_transcribe(data: dict[str, Any], config: DaemonConfig) -> Asked:
    """``name`` must be our model (or absent); ``language`` one it speaks (``en_US`` and
    ``en-US`` mean ``en``); ``transcript_names``/``transcript_terms`` become whisperd's
    vocabulary (docs/text.md), checked by the same rules."""
    ours = model_name(config.model)
    name = _optional_str(data, "name")
    if name is not None and name not in (ours, "whisperd"):
        raise WyomingError("bad_field", f"no model {name!r} here; this server has {ours!r}")
    language = _optional_str(data, "language")
    if language is not None:
        language = language.replace("_", "-").split("-")[0].lower()
        if language not in languages(ours):
            raise WyomingError("bad_field", f"the model {ours} does not speak {language!r}")
    entries: list[Any] = []
    for key in ("transcript_names", "transcript_terms"):
        value = data.get(key)
        if value is not None and not isinstance(value, list):
            raise WyomingError("bad_field", f"transcribe's {key!r} must be a list of strings")
        entries += value or []
    try:
        vocabulary = check_vocabulary(entries) if entries else None
    except ProtocolError as exc:
        raise WyomingError("bad_field", f"transcript_names/terms: {exc.message}") from None
    return Asked(language, vocabulary)


def _int_field(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise WyomingError("bad_audio_format", f"audio {key} must be an integer in {low}..{high}")
    return value


def audio_format(data: dict[str, Any]) -> PcmFormat:
    """The PCM format of an ``audio-start`` or ``audio-chunk``: 16-bit samples, a rate and
    channel count the Unix socket would take too."""
    rate = _int_field(data, "rate", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    width = _int_field(data, "width", 1, 8)
    if width != SAMPLE_WIDTH:
        raise WyomingError(
            "bad_audio_format", f"audio width {width} is not supported; send 16-bit audio (2)"
        )
    channels = _int_field(data, "channels", 1, MAX_CHANNELS)
    return PcmFormat("s16le", rate, channels)


def request(request_id: str, fmt: PcmFormat, asked: Asked, streaming: bool) -> Transcribe:
    """whisperd's transcription request for one Wyoming stream: a PCM stream, live when
    transcript streaming is on (its commit events become transcript-chunk events)."""
    options: dict[str, Any] = {}
    if asked.language:
        options["language"] = asked.language
    if asked.vocabulary:
        options["vocabulary"] = asked.vocabulary
    if streaming:
        options["live"] = True
    return Transcribe(request_id, "pcm", fmt, options)
