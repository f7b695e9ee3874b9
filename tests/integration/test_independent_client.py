"""A client written from docs/protocol.md alone (socket, struct, json; no whisperd imports).

If this file needs anything the document does not say, the document is incomplete.
"""

from __future__ import annotations

import json
import socket
import struct
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningDaemon, assert_heard_jfk, espeak, shared_audio, words

# --- the client -------------------------------------------------------------------------------

MAX_REPLY = 16 * 1024 * 1024


class ProtocolClient:
    """Frames are a u32 big-endian length and a payload; messages are UTF-8 JSON objects."""

    def __init__(self, path: str, timeout: float = 120) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.next_id = 0
        self.limits: dict[str, int] = {}

    def close(self) -> None:
        self.sock.close()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("whisperd closed the connection")
            data += chunk
        return bytes(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def send(self, message: dict[str, Any]) -> None:
        self.send_frame(json.dumps(message).encode("utf-8"))

    def receive(self) -> dict[str, Any]:
        (length,) = struct.unpack(">I", self._exactly(4))
        if length > MAX_REPLY:  # "clients should enforce it"
            raise ConnectionError(f"reply of {length} bytes is over the limit")
        message = json.loads(self._exactly(length).decode("utf-8"))
        assert isinstance(message, dict)
        return message

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        rid = self.new_id()
        self.send({**message, "id": rid})
        reply = self.receive()
        assert reply["id"] == rid, reply
        return reply

    def hello(self) -> dict[str, Any]:
        reply = self.request({"type": "hello", "version": 1, "client": "independent-test/1.0"})
        assert reply["type"] == "hello", reply
        self.limits = reply["limits"]
        return reply

    def transcribe(
        self, audio: bytes, frame_size: int, **fields: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rid = self.new_id()
        self.send({"type": "transcribe", "id": rid, "options": {}, **fields})
        accepted = self.receive()
        assert accepted == {"type": "accepted", "id": rid}, accepted
        frame_size = min(frame_size, self.limits["max_audio_frame"])
        for start in range(0, len(audio), frame_size):
            part = audio[start : start + frame_size]
            self.send({"type": "audio", "id": rid, "size": len(part)})
            self.send_frame(part)
        self.send({"type": "end", "id": rid})
        segments = []
        while True:
            message = self.receive()
            assert message["id"] == rid, message
            if message["type"] == "segment":
                segments.append(message)
                continue
            assert message["type"] == "result", message
            return segments, message


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture
def client(daemon: RunningDaemon) -> Any:
    connection = ProtocolClient(str(daemon.socket_path))
    yield connection
    connection.close()


STATUS_FIELDS = {
    "version",
    "pid",
    "uptime",
    "model_loaded",
    "loading",
    "model",
    "model_path",
    "model_source",
    "device",
    "compute_type",
    "cpu_threads",
    "load_seconds",
    "configured_model",
    "idle_timeout",
    "idle_exit_in",
    "busy",
    "connections",
    "queue_length",
    "requests_served",
    "socket_activated",
}


def test_hello_and_status(client: ProtocolClient, daemon: RunningDaemon) -> None:
    hello = client.hello()
    assert hello["version"] == 1
    assert hello["server"].startswith("whisperd/")
    assert set(hello["limits"]) == {"max_message", "max_audio_frame", "max_audio_bytes"}
    assert client.request({"type": "ping"})["type"] == "pong"
    status = client.request({"type": "status"})
    assert status["type"] == "status"
    assert STATUS_FIELDS <= set(status), STATUS_FIELDS - set(status)
    assert status["pid"] == daemon.process.pid
    assert status["connections"] >= 1
    assert status["socket_activated"] is False
    assert isinstance(status["model_loaded"], bool) and isinstance(status["busy"], bool)


def test_load(client: ProtocolClient) -> None:
    client.hello()
    loaded = client.request({"type": "load"})
    assert loaded["type"] == "loaded", loaded
    assert loaded["model"] == "tiny.en"
    assert loaded["device"] == "cpu"
    status = client.request({"type": "status"})
    assert status["model_loaded"] is True
    assert status["model_source"] in ("path", "cache", "bundled", "download")


def test_transcribe_flac_file_in_several_frames(client: ProtocolClient) -> None:
    client.hello()
    audio = shared_audio("jfk.flac").read_bytes()
    frame_size = len(audio) // 5 + 1
    segments, result = client.transcribe(audio, frame_size, format="file")
    assert segments, "segments come before the result"
    assert result["text"] == " ".join(s["text"].strip() for s in segments if s["text"].strip())
    assert_heard_jfk(result["text"])  # bounded WER
    assert result["language"] == "en"
    assert result["skipped"] is None
    assert abs(result["duration"] - 11.0) < 0.2
    assert set(result["timings"]) >= {"queue", "audio_decode", "load", "decode", "total"}
    assert result["model"] == "tiny.en"
    assert all(s["start"] <= s["end"] for s in result["segments"])


def test_transcribe_pcm_s16le_at_espeak_rate(client: ProtocolClient, tmp_path: Path) -> None:
    sentence = "The library opens at nine and closes in the evening."
    speech = espeak(sentence, tmp_path / "speech.wav", speed=150, resample=False)
    with wave.open(str(speech), "rb") as wav:
        assert wav.getsampwidth() == 2
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = wav.readframes(wav.getnframes())
    assert rate == 22050  # what espeak-ng writes; the daemon resamples
    client.hello()
    frame_size = rate * channels * 2 // 4  # a quarter of a second per frame, like a microphone
    segments, result = client.transcribe(
        pcm,
        frame_size,
        format="pcm",
        encoding="s16le",
        sample_rate=rate,
        channels=channels,
    )
    assert segments
    heard = set(words(result["text"]))
    assert {"library", "opens", "closes", "evening"} <= heard, result["text"]
    assert abs(result["duration"] - len(pcm) / (2 * channels * rate)) < 0.1


def test_error_reply_shape(client: ProtocolClient) -> None:
    client.hello()
    reply = client.request({"type": "transcribe", "format": "pcm", "encoding": "s16le"})
    assert reply["type"] == "error"
    assert reply["code"] == "bad_field"
    assert isinstance(reply["message"], str)
    assert client.request({"type": "ping"})["type"] == "pong"
