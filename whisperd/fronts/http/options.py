"""The form fields of ``POST /v1/audio/transcriptions`` checked, and turned into the
options of a whisperd transcription (whisperd.protocol's Transcribe options)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from whisperd.fronts.http.errors import bad_field
from whisperd.fronts.http.formats import FORMATS
from whisperd.fronts.http.upload import Form

MAX_PROMPT_CHARS = 2000
MAX_MODEL_CHARS = 256
LANGUAGE = re.compile(r"[a-z]{2,3}")
GRANULARITIES = ("segment", "word")


@dataclass(frozen=True)
class Request:
    response_format: str = "json"
    stream: bool = False
    granularities: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # the Transcribe options


def parse(form: Form) -> Request:
    fields = form.fields
    model = fields.get("model", "")
    if len(model) > MAX_MODEL_CHARS:
        raise bad_field("model", f"'model' is longer than {MAX_MODEL_CHARS} characters")
    response_format = fields.get("response_format", "json").strip() or "json"
    if response_format not in FORMATS:
        raise bad_field(
            "response_format",
            f"response_format {response_format[:40]!r} is not one of {', '.join(FORMATS)}",
        )
    stream = parse_bool("stream", fields.get("stream", "false"))
    if stream and response_format not in ("json", "text"):
        raise bad_field(
            "stream", "stream=true answers with text events: use response_format json or text"
        )
    granularities = parse_granularities(form.repeated.get("timestamp_granularities[]", []))
    if granularities and response_format != "verbose_json":
        raise bad_field(
            "timestamp_granularities",
            "timestamp_granularities needs response_format=verbose_json",
        )
    parse_temperature(fields.get("temperature", ""))
    options: dict[str, Any] = {}
    if "word" in granularities:
        options["word_timestamps"] = True  # the engine times words only when asked: it costs
    language = parse_language(fields.get("language", ""))
    if language:
        options["language"] = language
    prompt = parse_prompt(fields.get("prompt", ""))
    if prompt:
        options["initial_prompt"] = prompt
    return Request(response_format, stream, granularities, options)


def parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", ""):
        raise bad_field(name, f"{name!r} must be true or false")
    return value in ("true", "1")


def parse_granularities(values: list[str]) -> tuple[str, ...]:
    for value in values:
        if value not in GRANULARITIES:
            raise bad_field(
                "timestamp_granularities",
                f"timestamp granularity {value[:40]!r} is not one of segment, word",
            )
    return tuple(dict.fromkeys(values))


def parse_temperature(text: str) -> float:
    """Checked like OpenAI's (0..1). whisperd keeps its own decoding settings (a greedy or
    beam search at 0, with Whisper's fallback to higher temperatures), so it is not used."""
    if not text.strip():
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise bad_field("temperature", "'temperature' must be a number") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise bad_field("temperature", "'temperature' must be within 0..1")
    return value


def parse_language(text: str) -> str:
    """An ISO-639-1 (or -3) code as Whisper knows them; "" lets the model detect it."""
    value = text.strip().lower()
    if not value or value == "auto":
        return ""
    if not LANGUAGE.fullmatch(value) or value not in known_languages():
        raise bad_field("language", f"unknown language code {text[:20]!r} (say en, de, fr)")
    return value


def known_languages() -> frozenset[str]:
    """Whisper's language codes (faster-whisper's list, imported only when asked)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def parse_prompt(text: str) -> str:
    if len(text) > MAX_PROMPT_CHARS:
        raise bad_field("prompt", f"'prompt' is longer than {MAX_PROMPT_CHARS} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise bad_field("prompt", "'prompt' contains control characters")
    return " ".join(text.split())
