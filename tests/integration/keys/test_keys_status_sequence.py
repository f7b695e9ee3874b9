"""The status a bar sees during a real dictation without keyboards (issue 13).

whisperd-keys runs as a program with ``trigger = "none"`` (keys_program.py: only its
virtual keyboard is a recording double), records a private PulseAudio virtual microphone
that plays jfk.flac, streams to a real whisperd with the bundled model, and is driven by
``whisperctl dictate toggle`` twice. Two ``whisperctl status --follow`` processes record
what a bar would show, one of them asking for the text. Nothing is pinned to what the
model says on this CPU: the typed text is checked by its words, the states by their order.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningDaemon, shared_audio, words
from tests.integration.keys.pulse_harness import (
    APT_PACKAGES,
    PulseAudio,
    missing_tools,
    write_wav,
)
from whisperd.keys.layout import CharMap, LayoutName, decode

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
EXPECTED = "ask not what your country can do for you"
WAIT = 300.0  # seconds for the dictation's text on a loaded 2-core machine: a hang, not a pace


class Lines:
    """A child process's standard output, line by line, as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.queue.put(line)

    def until(self, wanted: Any, timeout: float = WAIT) -> dict[str, Any]:
        """Events up to and including the first for which ``wanted(event)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"not seen in {timeout} s; seen: {self.seen}") from None
            event = json.loads(line)
            self.seen.append(event)
            if wanted(event):
                return event


def state_is(*states: str) -> Any:
    return lambda event: event.get("state") in states


@pytest.fixture()
def pulse(tmp_path: Path) -> Iterator[PulseAudio]:
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"PulseAudio tools missing ({', '.join(missing)}): apt-get install {APT_PACKAGES}"
        )
    server = PulseAudio(tmp_path / "pulse")
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.skip(f"cannot start a private PulseAudio here: {exc}")
    yield server
    server.stop()


def speech_wav(folder: Path) -> Path:
    """jfk.flac as a 16-bit WAV (paplay stops early on the 24-bit FLAC)."""
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(shared_audio("jfk.flac")), sampling_rate=16000)
    return write_wav(folder / "speech.wav", samples)


class Desktop:
    """One user's session: the environment every program of this test runs in."""

    def __init__(self, pulse: PulseAudio, daemon: RunningDaemon, folder: Path) -> None:
        self.folder = folder
        self.config = folder / "config.toml"
        self.config.write_text(
            "[keys]\n"
            'trigger = "none"\n'
            'layout = "us"\n'
            'language = "en"\n'
            f'socket_path = "{daemon.socket_path}"\n'
            "status_text = true\n"
            "timeout = 300.0\n"
        )
        self.env = {
            **pulse.env,
            "XDG_CONFIG_HOME": str(folder / "xdg-config"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("WHISPERD_KEYS_SOCKET", None)
        self.children: list[subprocess.Popen[str]] = []

    def whisperctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "whisperd.cli", "--config", str(self.config), *args]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)

    def follow(self, *options: str) -> Lines:
        cmd = [sys.executable, "-m", "whisperd.cli", "--config", str(self.config)]
        process = subprocess.Popen(
            [*cmd, "status", "--follow", *options],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.children.append(process)
        return Lines(process)

    def start_keys(self, typed: Path) -> subprocess.Popen[str]:
        program = [sys.executable, str(HERE / "keys_program.py"), str(typed), "--"]
        process = subprocess.Popen(
            [*program, "--config", str(self.config)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.children.append(process)
        return process

    def end(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.communicate()


@pytest.fixture()
def desktop(pulse: PulseAudio, daemon: RunningDaemon, tmp_path: Path) -> Iterator[Desktop]:
    session = Desktop(pulse, daemon, tmp_path)
    yield session
    session.end()


def pressed_at_end(events: list[list[int]]) -> set[int]:
    down: set[int] = set()
    for code, value in events:
        if value:
            down.add(code)
        else:
            down.discard(code)
    return down


def test_a_bar_follows_a_dictation_by_shortcuts(
    desktop: Desktop, pulse: PulseAudio, tmp_path: Path
) -> None:
    wav = speech_wav(tmp_path)
    bar = desktop.follow()  # started first: whisperd-keys is not running yet
    overlay = desktop.follow("--text")
    for follower in (bar, overlay):
        follower.until(state_is("stopped"), 60)

    typed_path = tmp_path / "typed.json"
    keys = desktop.start_keys(typed_path)
    for follower in (bar, overlay):
        follower.until(state_is("idle"), 120)  # reconnected to the new whisperd-keys

    start = desktop.whisperctl("dictate", "toggle")
    assert (start.returncode, start.stdout, start.stderr) == (0, "", "")
    bar.until(state_is("recording"), 60)
    pulse.play(wav)  # about 11 s of speech into the virtual microphone
    stop = desktop.whisperctl("dictate", "toggle")
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, "", "")
    for follower in (bar, overlay):
        follower.until(state_is("transcribing", "typing", "idle"), 60)
        if follower.seen[-1]["state"] != "idle":
            follower.until(state_is("idle"), WAIT)

    keys.send_signal(signal.SIGTERM)
    log, _ = keys.communicate(timeout=60)
    assert keys.returncode == 0, log
    for follower in (bar, overlay):
        follower.until(state_is("stopped"), 60)
        follower.process.send_signal(signal.SIGTERM)
        _, stderr = follower.process.communicate(timeout=60)
        assert (follower.process.returncode, stderr) == (0, "")

    typed = json.loads(typed_path.read_text())
    text = decode(CharMap.for_layout(LayoutName("us")).keymap, map(tuple, typed["events"]))
    assert EXPECTED in " ".join(words(text)), text
    assert pressed_at_end(typed["events"]) == set() and typed["held"] == []

    states = [event["state"] for event in bar.seen]
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert changes[:3] == ["stopped", "idle", "recording"], changes
    assert changes[-2:] == ["idle", "stopped"], changes
    assert set(changes[3:-2]) <= {"transcribing", "typing"} and changes[3:-2], changes

    recording = [e for e in bar.seen if e["state"] == "recording"]
    elapsed = [e["elapsed"] for e in recording]
    assert elapsed == sorted(elapsed) and elapsed[-1] >= 5.0, elapsed  # ~11 s were spoken
    assert len({e["since"] for e in recording}) == 1
    assert all("text" not in e for e in bar.seen), "text only for a follower that asks"

    # What the overlay saw while recording was committed text of this dictation: its words
    # are among the typed ones (the model may commit nothing before the stop: not pinned).
    texts = [e["text"] for e in overlay.seen if e.get("text")]
    assert all(set(words(t)) <= set(words(text)) for t in texts), (texts, text)

    # whisperd answered a dictation and still runs: its model is loaded, seen without
    # connecting to it (a listener on its socket; no systemd user manager here).
    after = [e for e in bar.seen if e["state"] == "idle"][-1]
    assert (after["daemon"], after["model"]) == ("running", "loaded"), after
    assert "country" not in log, "whisperd-keys must not log the text"
    assert (
        os.path.exists(desktop.folder)
        and not (Path(desktop.env["XDG_RUNTIME_DIR"]) / "whisperd-keys.sock").exists()
    ), "the control socket is removed at exit"
