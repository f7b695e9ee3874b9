"""Helpers for the integration tests: raw protocol requests against a running whisperd."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import wire
from tests.conftest import JFK_TEXT, RunningDaemon, shared_audio, words

CHUNK = 1 << 20


def connect(daemon: RunningDaemon, greet: bool = True, timeout: float = 60) -> socket.socket:
    sock = daemon.connect()
    sock.settimeout(timeout)
    if greet:
        reply = wire.hello(sock)
        assert reply["type"] == "hello", reply
    return sock


def send_audio(sock: socket.socket, rid: Any, data: bytes, chunk: int = CHUNK) -> None:
    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        sock.sendall(wire.msg({"type": "audio", "id": rid, "size": len(part)}) + wire.frame(part))


def start(sock: socket.socket, rid: Any, fmt: str = "file", **fields: Any) -> None:
    sock.sendall(wire.msg({"type": "transcribe", "id": rid, "format": fmt, **fields}))
    reply = wire.recv(sock)
    assert reply == {"type": "accepted", "id": rid}, reply


def collect(sock: socket.socket, rid: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Segments, then the result or an error, for one request (other ids are not expected)."""
    segments: list[dict[str, Any]] = []
    while True:
        message = wire.recv(sock)
        assert message.get("id") == rid, message
        if message["type"] == "segment":
            segments.append(message)
            continue
        return segments, message


def transcribe(
    sock: socket.socket, rid: Any, data: bytes, fmt: str = "file", **fields: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    start(sock, rid, fmt, **fields)
    send_audio(sock, rid, data)
    sock.sendall(wire.msg({"type": "end", "id": rid}))
    return collect(sock, rid)


def pcm_fields(rate: int = 16000, channels: int = 1, encoding: str = "s16le") -> dict[str, Any]:
    return {"encoding": encoding, "sample_rate": rate, "channels": channels}


def jfk_bytes() -> bytes:
    return shared_audio("jfk.flac").read_bytes()


def ping(sock: socket.socket, rid: Any = "ping") -> None:
    sock.sendall(wire.msg({"type": "ping", "id": rid}))
    assert wire.recv(sock) == {"type": "pong", "id": rid}


def assert_healthy(daemon: RunningDaemon, audio: Path | None = None) -> None:
    """A fresh client gets pong and a correct transcription of jfk.flac."""
    assert daemon.process.poll() is None, daemon.log()[-4000:]
    with connect(daemon) as sock:
        ping(sock, "health-ping")
        data = (audio or shared_audio("jfk.flac")).read_bytes()
        segments, result = transcribe(sock, "health", data)
        assert result["type"] == "result", result
        assert words(result["text"]) == words(JFK_TEXT), result["text"]
        assert segments, "no segment before the result"


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)
            )
        previous = current
    return previous[-1] / max(len(ref), 1)


# Generated speech: (sentence, words the model must get right).
SENTENCES: list[tuple[str, list[str]]] = [
    ("The quick brown fox jumps over the lazy dog.", ["quick", "brown", "fox", "dog"]),
    ("Please open the window in the kitchen.", ["open", "window", "kitchen"]),
    ("Please close the door when you leave the house.", ["close", "door", "leave", "house"]),
    ("We will meet at the train station tomorrow morning.", ["train", "station", "tomorrow"]),
    ("The weather is cold and windy today.", ["weather", "cold", "today"]),
    ("She bought three red apples at the market.", ["bought", "apples", "market"]),
    ("Turn left at the next traffic light.", ["left", "traffic", "light"]),
    ("The children are playing football in the park.", ["children", "football", "park"]),
    ("Send the report to the manager before lunch.", ["report", "manager", "lunch"]),
    ("I would like a cup of hot coffee with milk.", ["cup", "coffee", "milk"]),
    ("The museum is closed on Mondays.", ["museum", "closed", "mondays"]),
    ("The garden is full of beautiful flowers.", ["garden", "beautiful", "flowers"]),
    ("Our flight to London was delayed by two hours.", ["flight", "london", "delayed"]),
]


def espeak_wav(text: str, path: Path, speed: int = 150) -> Path:
    """Like tests.conftest.espeak, but reproducible: sox without dither (-D).

    sox dithers by default when it converts, so the same sentence gives different bytes
    on every run, and the tiny model's text can change with them.
    """
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.skip("espeak-ng and sox are needed for generated speech (apt-get install)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", "-D", str(raw), "-r", "16000", "-c", "1", str(path)], check=True)
    raw.unlink()
    return path


def espeak_wavs(folder: Path, count: int = len(SENTENCES), speed: int = 150) -> list[Path]:
    return [
        espeak_wav(text, folder / f"s{i}.wav", speed)
        for i, (text, _) in enumerate(SENTENCES[:count])
    ]
