"""The remote engine against real third-party servers from the package index, started
on loopback by the tests (remote_servers.py): wyoming-faster-whisper over Wyoming and
faster-whisper-server over the OpenAI API, both on the bundled tiny.en.

Same text as the local path on this machine: a local whisperd and the servers decode
with the same model, device, compute type, beam and VAD setting, so the words must be
equal (no text is pinned). Dictation streams to the Wyoming server while it is spoken.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests import wire
from tests.conftest import (
    RunningDaemon,
    espeak,
    shared_audio,
    start_daemon,
    stop_daemon,
    word_errors,
    words,
)
from tests.integration import remote_servers
from tests.integration.support import connect, pcm_fields, transcribe

# Local decoding settings both servers are given too (remote_servers.py).
LOCAL = '[daemon]\nvad_filter = false\nlanguage = "en"\n'
SENTENCES = [
    "Please send the quarterly report to the finance team before Friday.",
    "The weather in the mountains changed quickly during the afternoon.",
]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("speech")
    spoken = [espeak(text, folder / f"s{i}.wav") for i, text in enumerate(SENTENCES)]
    return [shared_audio("jfk.flac"), shared_audio("stereo_diarization.wav"), *spoken]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("local"), "--idle-timeout", "600", config=LOCAL)
    yield running
    stop_daemon(running)


def local_results(daemon: RunningDaemon, files: list[Path]) -> list[dict[str, object]]:
    with connect(daemon, timeout=300) as sock:
        return [transcribe(sock, i, path.read_bytes())[1] for i, path in enumerate(files)]


def remote_daemon(tmp: Path, url: str) -> RunningDaemon:
    config = f'[daemon]\nengine = "remote"\nremote_url = "{url}"\nfallback = "none"\n'
    return start_daemon(tmp, "--idle-timeout", "600", config=config)


@pytest.mark.parametrize("kind", ["wyoming", "openai"])
def test_files_through_a_remote_give_the_local_text(
    kind: str, tmp_path: Path, local: RunningDaemon, audio_files: list[Path]
) -> None:
    expected = local_results(local, audio_files)
    compute_type = str(expected[0]["compute_type"])
    start = (
        remote_servers.wyoming_faster_whisper(tmp_path, compute_type)
        if kind == "wyoming"
        else remote_servers.faster_whisper_server(tmp_path, compute_type, vad=False)
    )
    with start as server:
        daemon = remote_daemon(tmp_path, server.url)
        try:
            got = local_results(daemon, audio_files)
        finally:
            stop_daemon(daemon)
    for path, mine, theirs in zip(audio_files, expected, got, strict=True):
        assert theirs["type"] == "result", (path.name, theirs)
        assert theirs["engine"] == "remote" and theirs["remote_kind"] == kind
        assert words(str(theirs["text"])) == words(str(mine["text"])), path.name
        assert words(str(theirs["text"])), path.name  # something was heard
    assert "fellow" not in daemon.log().lower()  # the remote's text is not logged either


def stream(
    daemon: RunningDaemon, pcm: bytes, live: bool
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """A dictation: 100 ms frames, as whisperd-keys sends them; its commits and result."""
    with connect(daemon, timeout=300) as sock:
        options = {"live": True} if live else {}
        message = {
            "type": "transcribe",
            "id": 1,
            "format": "pcm",
            **pcm_fields(),
            "options": options,
        }
        sock.sendall(wire.msg(message))
        assert wire.recv(sock) == {"type": "accepted", "id": 1}
        for start in range(0, len(pcm), 3200):
            part = pcm[start : start + 3200]
            sock.sendall(wire.msg({"type": "audio", "id": 1, "size": len(part)}) + wire.frame(part))
        sock.sendall(wire.msg({"type": "end", "id": 1}))
        commits: list[dict[str, object]] = []
        while True:
            reply = wire.recv(sock)
            if reply["type"] == "commit":
                commits.append(reply)
            elif reply["type"] != "segment":
                return commits, reply


def test_dictation_streams_to_wyoming(
    tmp_path: Path, local: RunningDaemon, audio_files: list[Path]
) -> None:
    """A live dictation through a Wyoming remote: one final commit with the text the
    local file path gives for the same audio."""
    from whisperd.audio import decode_file

    jfk = audio_files[0]
    samples = decode_file(jfk.read_bytes())
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    expected = local_results(local, [jfk])[0]
    with remote_servers.wyoming_faster_whisper(tmp_path, str(expected["compute_type"])) as server:
        daemon = remote_daemon(tmp_path, server.url)
        try:
            commits, result = stream(daemon, pcm, live=True)
            _, plain = stream(daemon, pcm, live=False)
        finally:
            stop_daemon(daemon)
    assert result["type"] == "result", result
    assert result["engine"] == "remote"
    assert [c["final"] for c in commits] == [True]
    assert words(str(commits[0]["text"])) == words(str(expected["text"]))
    assert words(str(result["text"])) == words(str(expected["text"]))
    assert words(str(plain["text"])) == words(str(expected["text"]))


@pytest.mark.parametrize("front", ["http", "wyoming"])
def test_whisperd_as_another_whisperds_remote(
    front: str, tmp_path: Path, audio_files: list[Path]
) -> None:
    """whisperd's own fronts (OpenAI-compatible HTTP with a token, Wyoming) as the remote of
    another whisperd: the words are those the serving daemon gives on its Unix socket."""
    port = remote_servers.free_port()
    token = tmp_path / "token"
    token.write_text("a-token-for-this-test\n")
    token.chmod(0o600)
    if front == "http":
        serving_config = f'[http]\nlisten = "127.0.0.1:{port}"\ntoken_file = "{token}"\n'
        url, token_line = f"http://127.0.0.1:{port}/v1", f'remote_token_file = "{token}"\n'
    else:
        serving_config = f'[wyoming]\nlisten = "tcp://127.0.0.1:{port}"\n'
        url, token_line = f"wyoming://127.0.0.1:{port}", ""
    (tmp_path / "serving").mkdir()
    (tmp_path / "using").mkdir()
    serving = start_daemon(tmp_path / "serving", "--idle-timeout", "600", config=serving_config)
    config = f'[daemon]\nengine = "remote"\nremote_url = "{url}"\nfallback = "none"\n{token_line}'
    using = start_daemon(tmp_path / "using", "--idle-timeout", "600", config=config)
    try:
        expected = local_results(serving, audio_files)
        got = local_results(using, audio_files)
    finally:
        stop_daemon(using)
        stop_daemon(serving)
    for path, mine, theirs in zip(audio_files, expected, got, strict=True):
        assert theirs["type"] == "result" and theirs["engine"] == "remote", (path.name, theirs)
        heard, reference = words(str(theirs["text"])), words(str(mine["text"]))
        if front == "http":  # a file request on both sides: the same decode, the same words
            assert heard == reference, path.name
        else:
            # The Wyoming front streams: a live job, committed at the speaker's pauses as the
            # audio arrives, so where a piece ends depends on the machine's pace (here the
            # audio comes faster than real time, so drafts come a word after the pauses).
            # jfk's first piece was heard "And so am I fellow Americans" that way (2 words
            # on every run) until a first piece needed 4.5 s heard and a confirmation 1.5 s
            # more (issue 12; now the file request's words on every run here). Other cuts
            # on a loaded machine may move a word or two at the margin.
            assert heard, path.name
            assert word_errors(reference, heard) <= 2, (path.name, heard, reference)
    assert "a-token-for-this-test" not in using.log() + serving.log()
