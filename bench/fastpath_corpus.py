"""Test material for the unpadded fast path: espeak-ng utterances and the shared recordings.

Everything is generated at run time into a temporary directory (nothing is committed).
Used by ``bench/fastpath_validate.py`` and the fast-path tests.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from whisperd.engine.samples import SAMPLE_RATE

# Plain sentences without digits (so WER needs no number normalisation), dictation-like.
SENTENCES: tuple[str, ...] = (
    "Please send the quarterly report to the finance team before Friday.",
    "The meeting has been moved to the large conference room on the second floor.",
    "I think we should postpone the launch until the documentation is finished.",
    "Open a new terminal window and run the build again.",
    "The weather was cold and windy, so we stayed inside and read books.",
    "Remind me to call my sister when I get home tonight.",
    "Our customers want faster search results and a simpler checkout page.",
    "The train to the airport leaves every twenty minutes from platform four.",
    "She painted the kitchen a pale shade of green last summer.",
    "Could you review my pull request when you have a moment?",
    "The server crashed because the disk was completely full.",
    "Add milk, eggs, bread and coffee to the shopping list.",
    "He walked slowly along the river and watched the boats go by.",
    "The new policy applies to all employees starting next month.",
    "Turn off the lights in the living room.",
    "We need to hire two more engineers for the mobile team.",
    "The children built a sandcastle with towers and a deep moat.",
    "Please schedule a follow up call with the design agency.",
    "The library closes early on public holidays.",
    "My laptop battery drains much faster than it used to.",
    "Write a short summary of the main arguments in the paper.",
    "The recipe calls for three cups of flour and a pinch of salt.",
    "Traffic on the highway was terrible this morning.",
    "Let us start the presentation with a brief overview of the project.",
    "The museum has a beautiful collection of ancient pottery.",
    "Check whether the backup finished successfully last night.",
    "I would like to book a table for four people at seven.",
    "The garden is full of roses, tulips and sunflowers.",
    "Our flight was delayed by almost three hours.",
    "The committee will announce its decision at the end of the week.",
    "Move the cursor to the end of the line and delete the last word.",
    "It is important to drink enough water during hot weather.",
    "The company reported strong growth in the european market.",
    "Please keep your voice down in the reading room.",
    "The cat jumped onto the windowsill and fell asleep in the sun.",
    "We should compare the two proposals before making a decision.",
    "The old bridge was replaced by a modern steel structure.",
    "Save the document and close all other applications.",
    "Many birds migrate south when the days become shorter.",
    "The doctor recommended more exercise and less sugar.",
    "Can you explain how the new scheduling algorithm works?",
    "The orchestra played a wonderful concert in the park.",
    "He forgot his umbrella and got soaked on the way to work.",
    "The database migration should be tested on a staging server first.",
    "Thank you for your patience while we investigate the problem.",
    "The mountains were covered with fresh snow after the storm.",
    "Please forward this message to everyone in the department.",
    "The children laughed at the clown and his funny little dog.",
    "Increase the font size and make the heading bold.",
    "The river flooded the fields after a week of heavy rain.",
    "I am not sure whether the store is open on Sunday.",
    "The engineers found a memory leak in the audio driver.",
    "A good night of sleep makes a big difference to your mood.",
    "The price of fresh vegetables has gone up again.",
    "Start recording now and stop when I say so.",
    "The hotel room had a lovely view of the harbour.",
    "We will need a larger budget to finish the renovation.",
    "Scroll down to the bottom of the page and click submit.",
    "The professor asked the students to read the first chapter.",
    "Nobody expected the small team to win the championship.",
)

SHORT_PHRASES: tuple[str, ...] = (
    "Yes.",
    "No thanks.",
    "Stop.",
    "Hello there.",
    "New line.",
    "Good morning.",
    "Delete that.",
    "Open the door.",
    "Thank you very much.",
    "See you tomorrow.",
    "Call me back.",
    "Send it now.",
    "Undo.",
    "Sounds good to me.",
    "Not right now.",
    "Next slide please.",
    "Cancel the order.",
    "What time is it?",
    "Save the file.",
    "I agree.",
)

VOICES: tuple[str, ...] = ("en-us", "en-gb", "en-gb-x-rp", "en-us+f3", "en-gb+m4", "en-029")


@dataclass(frozen=True)
class Clip:
    """One test utterance: 16 kHz mono float32 audio and its reference text."""

    name: str
    audio: npt.NDArray[np.float32]
    reference: str
    source: str  # "espeak" or "recording"
    voice: str = ""
    speed: int = 0

    @property
    def seconds(self) -> float:
        return float(self.audio.shape[0]) / SAMPLE_RATE


def normalize(text: str) -> list[str]:
    """Lower-case, drop punctuation (hyphens and slashes split words), split on spaces."""
    text = text.lower().replace("-", " ").replace("/", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    text = text.replace("'", "")
    return text.split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance / reference words."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return word_errors(ref, hyp) / len(ref)


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Substitutions + deletions + insertions (edit distance over words)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def synthesize(
    text: str, voice: str, speed: int, workdir: Path, name: str
) -> npt.NDArray[np.float32]:
    """espeak-ng -> sox (16 kHz mono 16-bit, without dither) -> float32 array.

    Without ``-D`` sox dithers with a new random seed each run: the same sentence gave
    other samples, so other words at the margins, and two runs of a benchmark differed by
    3-5 word errors on the same text. Undithered, a run is repeatable."""
    raw = workdir / f"{name}.raw.wav"
    out = workdir / f"{name}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "sox",
            str(raw),
            "-D",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return read_wav16(out)


def read_wav16(path: Path) -> npt.NDArray[np.float32]:
    import wave

    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1
        data = w.readframes(w.getnframes())
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0).copy()


def _trim_and_pad(
    audio: npt.NDArray[np.float32], rng: random.Random, lead: float, trail: float
) -> npt.NDArray[np.float32]:
    """Trim espeak's own silence, then add ``lead``/``trail`` seconds of quiet room noise
    (about -60 dBFS), the way a VAD-trimmed utterance looks."""
    level = np.abs(audio) > 0.01
    idx = np.flatnonzero(level)
    if idx.size:
        audio = audio[max(0, idx[0] - 160) : idx[-1] + 160]
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    lead_n, trail_n = int(lead * SAMPLE_RATE), int(trail * SAMPLE_RATE)
    out = np.concatenate(
        [np.zeros(lead_n, np.float32), audio.astype(np.float32), np.zeros(trail_n, np.float32)]
    )
    out += (nrng.standard_normal(out.shape[0]) * 0.001).astype(np.float32)
    return out


def espeak_texts(count: int, seed: int = 1234) -> list[tuple[str, str, int, float, float]]:
    """(text, voice, speed, lead_s, trail_s) covering 1-30 s: short phrases, single
    sentences and multi-sentence paragraphs."""
    rng = random.Random(seed)
    items: list[tuple[str, str, int, float, float]] = []
    for i in range(count):
        kind = i % 8
        if kind in (0, 1):
            text = rng.choice(SHORT_PHRASES)
        elif kind in (2, 3, 4):
            text = rng.choice(SENTENCES)
        elif kind == 5:
            text = " ".join(rng.sample(SENTENCES, 2))
        elif kind == 6:
            text = " ".join(rng.sample(SENTENCES, rng.randint(3, 4)))
        else:
            text = " ".join(rng.sample(SENTENCES, rng.randint(5, 7)))
        voice = VOICES[i % len(VOICES)]
        speed = rng.choice((140, 150, 160, 170, 180, 190))
        lead = rng.choice((0.0, 0.1, 0.2, 0.3))
        trail = rng.choice((0.0, 0.1, 0.3, 0.5, 1.0))
        items.append((text, voice, speed, lead, trail))
    return items


def espeak_clips(
    count: int = 160, seed: int = 1234, max_seconds: float = 30.0, workdir: Path | None = None
) -> list[Clip]:
    """Generate ``count`` espeak-ng clips (those longer than ``max_seconds`` are dropped)."""
    own = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="fastpath-espeak-")) if workdir is None else workdir
    rng = random.Random(seed + 1)
    clips: list[Clip] = []
    try:
        for i, (text, voice, speed, lead, trail) in enumerate(espeak_texts(count, seed)):
            name = f"es{i:03d}"
            audio = _trim_and_pad(synthesize(text, voice, speed, wd, name), rng, lead, trail)
            if audio.shape[0] > max_seconds * SAMPLE_RATE:
                continue
            clips.append(Clip(name, audio, text, "espeak", voice, speed))
    finally:
        if own:
            shutil.rmtree(wd, ignore_errors=True)
    return clips


JFK_REF = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
LEFT_REF = (
    "He began a confused complaint against the wizard, who had vanished behind the "
    "curtain on the left."
)
RIGHT_REF = "The horizon seems extremely distant."
MIT_A_REF = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files, to deal in the software without restriction,"
)
MIT_B_REF = (
    "including without limitation the rights to use, copy, modify, merge, publish, "
    "distribute, sublicense, and/or sell copies of the software, and to permit persons to "
    "whom the software is furnished to do so, subject to the following conditions: The above "
    "copyright notice and this permission notice shall be included in all copies or "
    "substantial portions of the software."
)
# hotwords.mp3 has no exact reference; this is the intended sentence (product: ComfyUI).
HOTWORDS_REF = "Then you go into your ComfyUI folder again in the ComfyUI"


def shared_audio_dir() -> Path:
    env = os.environ.get("WHISPERD_TEST_AUDIO")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "audio"


def recording_clips(audio_dir: Path | None = None) -> list[Clip]:
    """The shared real recordings (empty list when the folder is absent).

    multilingual.mp3 is cut at pauses into 0-8.98 s and 8.98-30.8 s (English part); the
    whole English part (0-30.8 s) is returned too as ``mit_full`` -- longer than 30 s,
    so not eligible for the fast path."""
    from faster_whisper import decode_audio

    d = audio_dir or shared_audio_dir()
    if not d.is_dir():
        return []
    sr = SAMPLE_RATE
    clips: list[Clip] = []

    def load(name: str) -> npt.NDArray[np.float32]:
        return np.asarray(decode_audio(str(d / name), sampling_rate=sr), dtype=np.float32)

    clips.append(Clip("jfk", load("jfk.flac"), JFK_REF, "recording"))
    left, right = decode_audio(str(d / "stereo_diarization.wav"), sr, split_stereo=True)
    clips.append(Clip("stereo_left", np.asarray(left, np.float32), LEFT_REF, "recording"))
    clips.append(Clip("stereo_right", np.asarray(right, np.float32), RIGHT_REF, "recording"))
    clips.append(Clip("hotwords", load("hotwords.mp3"), HOTWORDS_REF, "recording"))
    mit = load("multilingual.mp3")
    clips.append(Clip("mit_a", mit[: int(8.98 * sr)], MIT_A_REF, "recording"))
    clips.append(Clip("mit_b", mit[int(8.98 * sr) : int(30.8 * sr)], MIT_B_REF, "recording"))
    clips.append(Clip("mit_full", mit[: int(30.8 * sr)], MIT_A_REF + " " + MIT_B_REF, "recording"))
    return clips
