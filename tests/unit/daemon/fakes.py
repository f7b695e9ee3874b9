"""A fake engine for the daemon's unit tests: records calls, answers in a known way.

It satisfies whisperd.daemon.scheduler.ModelHost (and so pipeline.Transcriber) without
the model: each transcription is one segment naming the audio's length and offset.
"""

from __future__ import annotations

import io
import threading
import wave
from collections.abc import Callable
from typing import Any

import numpy as np

from whisperd.audio import SAMPLE_RATE, Samples
from whisperd.engine import Transcription


class FakeEngine:
    def __init__(self, speech_after_draft: bool = False) -> None:
        self.calls: list[tuple[str, int, dict[str, Any]]] = []
        self.loaded = False
        self.load_seconds: float | None = None
        self.speech_after_draft = speech_after_draft
        self.vad_calls = 0
        # Set by a test to hold the worker inside transcribe until released.
        self.gate: threading.Event | None = None
        # Appended to each text: "." makes every decoded piece end a sentence (live).
        self.suffix = ""

    def load(self) -> float:
        if self.loaded:
            return 0.0
        self.loaded, self.load_seconds = True, 0.01
        return 0.01

    def unload(self) -> bool:
        was, self.loaded = self.loaded, False
        return was

    def describe(self) -> dict[str, Any]:
        return {"model": "fake" if self.loaded else None, "device": "cpu"}

    def has_speech(self, audio: Samples) -> bool:
        self.vad_calls += 1
        return self.speech_after_draft

    def transcribe(
        self,
        audio: Samples,
        options: dict[str, Any],
        on_segment: Callable[[dict[str, Any]], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription:
        self.calls.append(("transcribe", audio.size, dict(options)))
        if self.gate is not None:
            self.gate.wait(10)
        text = f"{audio.size} samples{self.suffix}"
        segment: dict[str, Any] = {
            "start": round(offset, 3),
            "end": round(offset + audio.size / SAMPLE_RATE, 3),
            "text": text,
        }
        if options.get("word_timestamps"):  # the two words, each half of the audio
            middle = round(offset + audio.size / SAMPLE_RATE / 2, 3)
            segment["words"] = [
                {"word": str(audio.size), "start": segment["start"], "end": middle},
                {"word": "samples", "start": middle, "end": segment["end"]},
            ]
        if on_segment is not None:
            on_segment(segment)
        return Transcription(text, [segment], "en", audio.size / SAMPLE_RATE)

    def transcribe_many(
        self, audios: list[Samples], options: dict[str, Any]
    ) -> list[Transcription]:
        self.calls.append(("transcribe_many", len(audios), dict(options)))
        return [
            Transcription(f"{a.size} packed", [], "en", a.size / SAMPLE_RATE, path="packed")
            for a in audios
        ]


def tone(seconds: float, amplitude: float = 0.3) -> Samples:
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> Samples:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def s16le(samples: Samples) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def wav_bytes(samples: Samples) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(s16le(samples))
    return out.getvalue()
