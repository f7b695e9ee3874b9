"""Helpers for the integration tests: raw protocol requests against a running whisperd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import wire
from tests.conftest import RunningDaemon, assert_heard_jfk, espeak, shared_audio, wer, words

__all__ = ["wer", "words"]  # re-exported: tests import them from here too

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
        assert_heard_jfk(result["text"])
        assert segments, "no segment before the result"


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


def espeak_wavs(folder: Path, count: int = len(SENTENCES), speed: int = 150) -> list[Path]:
    return [
        espeak(text, folder / f"s{i}.wav", speed=speed)
        for i, (text, _) in enumerate(SENTENCES[:count])
    ]


def whisperctl(
    tmp_path: Path, daemon: RunningDaemon, config: str, *args: str, timeout: float = 300
) -> str:
    """``whisperctl ARGS`` against ``daemon`` with ``config`` as its config.toml; its stdout
    (the command must succeed)."""
    (tmp_path / "whisperd").mkdir(exist_ok=True)
    (tmp_path / "whisperd" / "config.toml").write_text(config)
    done = subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "--socket", str(daemon.socket_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
