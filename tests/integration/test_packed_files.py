"""Short files sent together are transcribed in shared windows by the daemon: real
socket, real model, results in order and each file with its own words only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunningDaemon, espeak, words
from whisperd.client import Client, ClientError

SENTENCES = {
    "weather": ("The weather today is sunny with a light breeze.", {"sunny", "breeze"}),
    "milk": ("Please remember to buy milk and fresh bread.", {"remember", "milk"}),
    "meeting": ("Our meeting has been moved to Thursday.", {"meeting", "thursday"}),
    "library": ("The library closes early on Sundays.", {"library", "closes"}),
    "window": ("She opened the window and listened to the birds.", {"window", "opened"}),
    "report": ("We should finish the report before Friday.", {"report", "finish"}),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("packed")
    return {name: espeak(text, folder / f"{name}.wav") for name, (text, _) in SENTENCES.items()}


def own_words_only(name: str, text: str) -> None:
    heard = set(words(text))
    assert SENTENCES[name][1] <= heard, (name, text)
    for other, (_, marks) in SENTENCES.items():
        if other != name:
            assert not heard & marks, f"{name} got words of {other}: {text}"


def test_files_sent_ahead_share_windows(daemon: RunningDaemon, files: dict[str, Path]) -> None:
    names = list(files)
    with Client.connect(str(daemon.socket_path), timeout=120, autostart=False) as client:
        client.load()
        results = list(client.transcribe_files([files[n] for n in names]))
    assert all(isinstance(r, dict) for r in results), results
    packed = [r["packed"] for r in results if isinstance(r, dict)]
    assert max(packed) >= 2, packed  # at least some files shared a window
    for name, result in zip(names, results, strict=True):
        assert isinstance(result, dict)
        own_words_only(name, result["text"])
        assert result["segments"] and result["segments"][0]["start"] < 1.0
        assert result["segments"][-1]["end"] <= result["duration"] + 0.05


def test_one_file_at_a_time_is_never_packed(daemon: RunningDaemon, files: dict[str, Path]) -> None:
    with Client.connect(str(daemon.socket_path), timeout=120, autostart=False) as client:
        for name in ("weather", "milk"):
            result = client.transcribe_file(files[name])
            assert result["packed"] == 0
            own_words_only(name, result["text"])


def test_a_bad_file_among_packed_ones_fails_alone(
    daemon: RunningDaemon, files: dict[str, Path], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    order = [files["weather"], corrupt, files["milk"], files["meeting"]]
    with Client.connect(str(daemon.socket_path), timeout=120, autostart=False) as client:
        results = list(client.transcribe_files(order))
    assert isinstance(results[1], ClientError) and results[1].code == "bad_audio"
    for name, result in zip(["weather", None, "milk", "meeting"], results, strict=True):
        if name is not None:
            assert isinstance(result, dict)
            own_words_only(name, result["text"])
