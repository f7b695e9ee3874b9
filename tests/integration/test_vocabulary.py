"""The vocabulary with the real model: ComfyUI through a file request (whisperctl) and a
dictation-style PCM stream; an empty list changes nothing; a 50-entry list keeps the word
error rate bounded. Texts are compared between two paths on this machine, never pinned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.vocabulary import VOCABULARY_50
from tests import wire
from tests.conftest import JFK_TEXT, RunningDaemon, shared_audio
from tests.integration.support import (
    SENTENCES,
    espeak_wavs,
    pcm_fields,
    transcribe,
    wer,
    whisperctl,
)
from tests.integration.support import connect as connect_daemon

# Bound of the 50-entry list's extra word errors over no list, measured with
# bench/vocabulary.py (docs/text.md): in percentage points of word error rate.
MAX_WER_INCREASE = 0.02
MAX_WER_50 = 0.25


def pcm_of(path: Path) -> bytes:
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(path), sampling_rate=16000)
    return bytes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def file_text(daemon: RunningDaemon, path: Path, **options: Any) -> str:
    with connect_daemon(daemon, timeout=300) as sock:
        _, result = transcribe(sock, "f", path.read_bytes(), options=options)
    assert result["type"] == "result", result
    return str(result["text"])


def stream_text(daemon: RunningDaemon, pcm: bytes, **options: Any) -> str:
    """As whisperd-keys sends dictation: PCM, without timestamps."""
    with connect_daemon(daemon, timeout=300) as sock:
        _, result = transcribe(
            sock, "s", pcm, "pcm", options={"without_timestamps": True, **options}, **pcm_fields()
        )
        while result["type"] == "commit":  # a live stream's pieces come first
            result = wire.recv(sock)
    assert result["type"] == "result", result
    return str(result["text"])


def comfy_right(text: str) -> bool:
    # The model's casing varies between machines ("comfyUI" on an AVX2 CPU, "ComfyUI"
    # on an AVX-512 one, the same decode): the word is what is checked.
    import re

    return "comfyui" in re.findall(r"[a-z0-9]+", text.lower()) and "comfy eye" not in text.lower()


def test_comfyui_through_whisperctl(daemon: RunningDaemon, tmp_path: Path) -> None:
    hotwords = shared_audio("hotwords.mp3")
    text = whisperctl(
        tmp_path, daemon, '[text]\nvocabulary = ["ComfyUI"]\n', "transcribe", str(hotwords)
    )
    assert comfy_right(text), text
    # --vocabulary on the command line does the same for one run
    text = whisperctl(tmp_path, daemon, "", "transcribe", "--vocabulary", "ComfyUI", str(hotwords))
    assert comfy_right(text), text


def test_comfyui_through_a_dictation_stream(daemon: RunningDaemon) -> None:
    # As whisperd-keys streams it: live. (A timestamp-free stream that is not live takes
    # the unpadded fast path, where tiny.en heard "comp view i" on an AVX2 machine: a
    # sound like no entry, docs/fastpath.md "Out-of-vocabulary words flip".)
    pcm = pcm_of(shared_audio("hotwords.mp3"))
    assert comfy_right(stream_text(daemon, pcm, vocabulary=["ComfyUI"], live=True))


def test_comfyui_in_a_later_piece_of_a_live_dictation() -> None:
    """A live dictation decodes each piece after the first with the committed text before
    it forced as the decoder's prefix, and faster-whisper gives the model no hotwords
    then: "Then you go into your comfy eye folder", said after jfk's sentence, was typed
    so with ComfyUI in the vocabulary, while a file request of the same audio wrote
    ComfyUI. Streamed in virtual time, so the pieces fall in the same places on every
    run: the sentence with ComfyUI must come in a piece after the first, and as the
    vocabulary spells it."""
    import asyncio

    from faster_whisper.audio import decode_audio

    from tests.integration.live_stream import stream_virtual
    from whisperd.config import DaemonConfig
    from whisperd.daemon.scheduler import Scheduler
    from whisperd.daemon.state import DaemonState
    from whisperd.engine import Engine

    room = (np.random.default_rng(1).standard_normal(16000) * 0.0005).astype(np.float32)
    jfk, comfy = (decode_audio(str(shared_audio(n))) for n in ("jfk.flac", "hotwords.mp3"))
    audio = np.concatenate([jfk, room, comfy, room])
    config = DaemonConfig()
    engine = Engine(config)
    pieces: list[str] = []
    with_context: list[dict[str, Any]] = []  # decodes with a forced prefix and entries
    decode_once = engine._transcribe_once

    def spy(audio: Any, options: dict[str, Any], *rest: Any) -> Any:
        if options.get("prefix") and options.get("vocabulary"):
            with_context.append(options)
        return decode_once(audio, options, *rest)

    engine._transcribe_once = spy  # type: ignore[method-assign]

    async def live() -> str:
        scheduler = Scheduler(config, DaemonState(False), lambda: None, lambda: None, engine)
        options = {"without_timestamps": True, "live": True, "vocabulary": ["ComfyUI"]}
        try:
            return await stream_virtual(scheduler, audio, options, pieces=pieces)
        finally:
            scheduler.shutdown()

    text = asyncio.run(live())
    later = [piece for piece in pieces[1:] if "comfy" in piece.lower()]
    assert later, pieces  # the ComfyUI sentence came after jfk's first piece
    assert with_context, pieces  # ... and was decoded with context, told the entry
    assert comfy_right(text), (text, pieces)
    assert comfy_right(engine.transcribe(audio, {"vocabulary": ["ComfyUI"]}).text)


def test_an_empty_vocabulary_changes_nothing(daemon: RunningDaemon, tmp_path: Path) -> None:
    paths = [shared_audio("jfk.flac"), shared_audio("hotwords.mp3"), *espeak_wavs(tmp_path, 4)]
    for path in paths:
        assert file_text(daemon, path, vocabulary=[]) == file_text(daemon, path), path
        pcm = pcm_of(path)
        assert stream_text(daemon, pcm, vocabulary=[]) == stream_text(daemon, pcm), path
    # and through whisperctl, with the list in the configuration
    empty = whisperctl(tmp_path, daemon, "[text]\nvocabulary = []\n", "transcribe", str(paths[0]))
    assert empty == whisperctl(tmp_path, daemon, "", "transcribe", str(paths[0]))


def test_a_50_entry_vocabulary_keeps_the_error_rate(daemon: RunningDaemon, tmp_path: Path) -> None:
    long_list = list(VOCABULARY_50)
    assert len(long_list) == 50
    cases = [(p, text) for p, (text, _) in zip(espeak_wavs(tmp_path), SENTENCES, strict=True)]
    cases.append((shared_audio("jfk.flac"), JFK_TEXT))
    reference = " ".join(text for _, text in cases)
    for path_name, text_of in (("file", file_text), ("stream", stream_of)):
        plain = wer(reference, " ".join(text_of(daemon, p) for p, _ in cases))
        listed = " ".join(text_of(daemon, p, vocabulary=long_list) for p, _ in cases)
        rate = wer(reference, listed)
        # compared with the same path without a list: files and the fast path differ
        assert rate <= MAX_WER_50, (path_name, rate, listed)
        assert rate <= plain + MAX_WER_INCREASE, (path_name, rate, plain, listed)


def stream_of(daemon: RunningDaemon, path: Path, **options: Any) -> str:
    return stream_text(daemon, pcm_of(path), **options)


def test_hostile_vocabularies_get_bad_field_and_the_connection_lives(
    daemon: RunningDaemon,
) -> None:
    from tests import wire

    with connect_daemon(daemon) as sock:
        for rid, vocabulary in enumerate(
            [["x"] * 101, ["a" * 65], [""], [1], "ComfyUI", ["\u0000"], [["nested"]]]
        ):
            sock.sendall(
                wire.msg(
                    {
                        "type": "transcribe",
                        "id": rid,
                        "format": "file",
                        "options": {"vocabulary": vocabulary},
                    }
                )
            )
            reply = wire.recv(sock)
            assert reply["type"] == "error" and reply["code"] == "bad_field", reply
            assert reply["id"] == rid
        _, result = transcribe(sock, "ok", shared_audio("jfk.flac").read_bytes())
        assert result["type"] == "result", result


def test_whisperctl_refuses_a_bad_vocabulary(daemon: RunningDaemon, tmp_path: Path) -> None:
    (tmp_path / "whisperd").mkdir()
    (tmp_path / "whisperd" / "config.toml").write_text(f"[text]\nvocabulary = {['w'] * 101}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "whisperd.cli",
            "--socket",
            str(daemon.socket_path),
            "transcribe",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert done.returncode == 2 and "text.vocabulary" in done.stderr, done.stderr
    long_word = "w" * 65
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "whisperd.cli",
            "--socket",
            str(daemon.socket_path),
            "transcribe",
            "--vocabulary",
            long_word,
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "none")},
    )
    assert out.returncode == 2 and "--vocabulary" in out.stderr, out.stderr
