"""Benchmark material, generated at run time into a temporary directory.

- espeak-ng utterances padded to exact lengths (3 s for the warm request; 2, 5, 10, 30 and
  60 s for dictation), an espeak set of 30 sentences for word error rates and 20 short
  files (2-6 s) for ``whisperctl transcribe``;
- the shared real recordings (``$WHISPERD_TEST_AUDIO``, default ``../shared/audio``),
  read in place and never copied into the repository.

Text normalisation, word errors, the sentence list and the recordings' reference
transcripts come from ``bench/fastpath_corpus.py`` (the fast-path validation), so both
benchmarks score words the same way.
"""

from __future__ import annotations

import random
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.fastpath_corpus import (
    SENTENCES,
    SHORT_PHRASES,
    VOICES,
    Clip,
    normalize,
    recording_clips,
    shared_audio_dir,
    synthesize,
    word_errors,
)
from whisperd.engine.samples import SAMPLE_RATE, Samples

Audio = Samples


@dataclass
class Item:
    """One piece of audio: samples (16 kHz mono float32), its reference text, and a file."""

    name: str
    audio: Audio
    reference: str
    path: Path | None = None  # the file to send as ``format: file`` (wav/flac/mp3)
    source: str = "espeak"

    @property
    def seconds(self) -> float:
        return float(self.audio.shape[0]) / SAMPLE_RATE

    def pcm16(self) -> bytes:
        return float_to_s16(self.audio)


def float_to_s16(audio: Audio) -> bytes:
    return bytes(np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2").tobytes())


def write_wav(path: Path, audio: Audio) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(float_to_s16(audio))
    return path


def trim(audio: Audio) -> Audio:
    """Cut espeak's own leading/trailing silence (keeps 10 ms either side)."""
    idx = np.flatnonzero(np.abs(audio) > 0.01)
    if idx.size == 0:
        return audio
    return audio[max(0, idx[0] - 160) : idx[-1] + 160]


def room(seconds: float, rng: np.random.Generator) -> Audio:
    """Quiet room noise (about -60 dBFS) instead of digital silence."""
    return (rng.standard_normal(int(round(seconds * SAMPLE_RATE))) * 0.001).astype(np.float32)


def pad_to(audio: Audio, seconds: float, rng: np.random.Generator, lead: float = 0.15) -> Audio:
    """``lead`` seconds of room noise, the speech, then room noise up to ``seconds``."""
    target = int(round(seconds * SAMPLE_RATE))
    start = int(round(lead * SAMPLE_RATE))
    out = np.zeros(target, dtype=np.float32)
    speech = audio[: max(0, target - start)]
    out[start : start + speech.shape[0]] = speech
    return out + room(seconds, rng)[:target]


class Generator:
    """espeak-ng synthesis with a cache (the same sentence/voice/speed is made once)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._cache: dict[tuple[str, str, int], Audio] = {}
        self._n = 0

    def speak(self, text: str, voice: str = "en-us", speed: int = 165) -> Audio:
        key = (text, voice, speed)
        if key not in self._cache:
            self._n += 1
            self._cache[key] = trim(synthesize(text, voice, speed, self.workdir, f"s{self._n}"))
        return self._cache[key]

    def utterance(self, seconds: float, seed: int, voice: str = "en-us") -> Item:
        """Sentences joined by 0.35 s pauses until ``seconds`` (minus 0.3 s) is reached,
        then padded with room noise to exactly ``seconds``."""
        rng = random.Random(seed)
        nrng = np.random.default_rng(seed)
        budget = seconds - 0.3
        pool = list(SHORT_PHRASES if seconds <= 2.5 else SENTENCES)
        rng.shuffle(pool)
        parts: list[Audio] = []
        texts: list[str] = []
        used = 0.15
        gap = room(0.35, nrng)
        for text in pool * 3:
            speech = self.speak(text, voice)
            extra = speech.shape[0] / SAMPLE_RATE + (0.35 if parts else 0.0)
            if used + extra > budget:
                if parts:
                    if seconds <= 10:
                        break
                    continue  # long utterances: keep filling with shorter sentences
                continue
            if parts:
                parts.append(gap)
            parts.append(speech)
            texts.append(text)
            used += extra
            if budget - used < 1.0:
                break
        if not parts:
            raise RuntimeError(f"no espeak sentence fits in {seconds} s")
        audio = pad_to(np.concatenate(parts), seconds, nrng)
        name = f"utt{seconds:g}s"
        item = Item(name, audio, " ".join(texts))
        item.path = write_wav(self.workdir / f"{name}.wav", audio)
        return item

    def sentence_set(
        self, count: int, offset: int, name: str, min_s: float = 0.0, max_s: float = 30.0
    ) -> list[Item]:
        """``count`` single sentences, voices and speeds varied, each with a little room noise."""
        items: list[Item] = []
        speeds = (150, 160, 170, 180)
        nrng = np.random.default_rng(offset + 7)
        i = offset
        while len(items) < count and i < offset + 4 * count:
            text = SENTENCES[i % len(SENTENCES)]
            voice = VOICES[i % len(VOICES)]
            speech = self.speak(text, voice, speeds[i % len(speeds)])
            i += 1
            seconds = speech.shape[0] / SAMPLE_RATE + 0.35
            if not min_s <= seconds <= max_s:
                continue
            audio = pad_to(speech, seconds, nrng)
            item = Item(f"{name}{len(items):02d}", audio, text)
            item.path = write_wav(self.workdir / f"{item.name}.wav", audio)
            items.append(item)
        return items


def recordings() -> list[Item]:
    """The shared recordings with exact references (hotwords.mp3 has none: left out)."""
    clips: list[Clip] = recording_clips()
    return [
        Item(c.name, c.audio, c.reference, None, "recording") for c in clips if c.name != "hotwords"
    ]


def recordings_ref(name: str) -> str:
    """The reference transcript of a shared recording (``jfk``, ``mit_full``, ...)."""
    from bench import fastpath_corpus as corpus

    refs = {
        "jfk": corpus.JFK_REF,
        "mit_full": corpus.MIT_A_REF + " " + corpus.MIT_B_REF,
        "stereo_left": corpus.LEFT_REF,
        "stereo_right": corpus.RIGHT_REF,
    }
    return refs[name]


def shared_file(name: str) -> Path | None:
    path = shared_audio_dir() / name
    return path if path.is_file() else None


def decode(path: Path) -> Audio:
    from faster_whisper import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)


def errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) after the fast-path validation's normalisation."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return word_errors(ref, hyp), len(ref)


class WerTally:
    def __init__(self) -> None:
        self.errors = 0
        self.words = 0

    def add(self, reference: str, hypothesis: str) -> None:
        e, n = errors(reference, hypothesis)
        self.errors += e
        self.words += n

    @property
    def wer(self) -> float | None:
        return None if self.words == 0 else self.errors / self.words
