"""A whisperd result in the response formats of OpenAI's transcription API (json, text,
srt, vtt, verbose_json) and its streamed events (server-sent events). Pure functions of
the result's message (text, segments, language, duration: docs/protocol.md)."""

from __future__ import annotations

import json
import math
from typing import Any

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
}


def render(
    result: dict[str, Any], response_format: str, granularities: tuple[str, ...] = ()
) -> tuple[str, str]:
    """The body and its content type (without charset: UTF-8 is added by the caller).
    ``granularities``: the request's ``timestamp_granularities[]`` (verbose_json only)."""
    if response_format == "text":
        body = result["text"] + "\n"
    elif response_format == "srt":
        body = srt(result["segments"])
    elif response_format == "vtt":
        body = vtt(result["segments"])
    elif response_format == "verbose_json":
        body = dumps(verbose(result, "word" in granularities))
    else:
        body = dumps({"text": result["text"], "usage": usage(result)})
    return body, CONTENT_TYPES[response_format]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def usage(result: dict[str, Any]) -> dict[str, Any]:
    """OpenAI bills whisper-1 by the second: the audio's duration, rounded up."""
    return {"type": "duration", "seconds": math.ceil(float(result.get("duration") or 0.0))}


def verbose(result: dict[str, Any], with_words: bool = False) -> dict[str, Any]:
    """verbose_json. Segments carry what whisperd knows (id, seek, start, end, text); it
    does not report token ids or log probabilities, so those keys are left out rather
    than made up. ``with_words``: OpenAI's top-level ``words`` (word, start, end), from
    the segments' words (the job asked the engine for ``word_timestamps``)."""
    segments = [
        {
            "id": index,
            "seek": int(round(float(seg["start"]) * 100)),  # in 10 ms frames, as Whisper's
            "start": seg["start"],
            "end": seg["end"],
            "text": seg["text"],
        }
        for index, seg in enumerate(result["segments"])
    ]
    body = {
        "task": "transcribe",
        "language": result.get("language") or "",
        "duration": result.get("duration") or 0.0,
        "text": result["text"],
        "segments": segments,
        "usage": usage(result),
    }
    if with_words:
        body["words"] = words(result["segments"])
    return body


class NoWords(Exception):
    """Word times were asked for, but the engine that answered gave none (a remote one)."""


def words(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every segment's words in order, as OpenAI's ``{"word", "start", "end"}``. A segment
    with text but no ``words`` comes from an engine that does not time words: NoWords,
    rather than a list that silently misses them."""
    timed: list[dict[str, Any]] = []
    for seg in segments:
        if "words" not in seg:
            if str(seg.get("text", "")).strip():
                raise NoWords
            continue
        timed.extend(
            {"word": w["word"], "start": w["start"], "end": w["end"]} for w in seg["words"]
        )
    return timed


def timestamp(seconds: float, separator: str) -> str:
    """HH:MM:SS,mmm (SubRip) or HH:MM:SS.mmm (WebVTT)."""
    millis = max(0, int(round(float(seconds) * 1000)))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def cue_text(text: str) -> str:
    """A cue's text must not end the cue early: no blank line inside, no "-->"."""
    lines = [line.strip() for line in text.replace("-->", "->").splitlines()]
    return "\n".join(line for line in lines if line)


def srt(segments: list[dict[str, Any]]) -> str:
    cues = []
    for number, seg in enumerate((s for s in segments if cue_text(s["text"])), start=1):
        span = f"{timestamp(seg['start'], ',')} --> {timestamp(seg['end'], ',')}"
        cues.append(f"{number}\n{span}\n{cue_text(seg['text'])}\n")
    return "\n".join(cues)


def vtt(segments: list[dict[str, Any]]) -> str:
    cues = ["WEBVTT\n"]
    for seg in segments:
        if cue_text(seg["text"]):
            span = f"{timestamp(seg['start'], '.')} --> {timestamp(seg['end'], '.')}"
            cues.append(f"{span}\n{cue_text(seg['text'])}\n")
    return "\n".join(cues)


# --- streaming (stream=true): OpenAI's transcription stream events -------------------------


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event: a ``data:`` line with the JSON event, then a blank line."""
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


def delta_event(text: str, first: bool) -> bytes | None:
    """``transcript.text.delta`` for one decoded segment: the deltas joined are the text
    (a space before each but the first, as the result's text joins segments)."""
    text = text.strip()
    if not text:
        return None
    return sse({"type": "transcript.text.delta", "delta": text if first else " " + text})


def done_event(result: dict[str, Any]) -> bytes:
    return sse({"type": "transcript.text.done", "text": result["text"]})
