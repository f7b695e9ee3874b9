"""Dictation without reading keyboards: whisperd-keys with ``trigger = "none"``, driven by
the real ``whisperctl dictate`` over the control socket, against a real whisperd.

Only the hardware is doubled: the microphone plays jfk.flac (then silence, like a live
microphone) and the virtual keyboard records its key events, which are decoded through
the real XKB layout. whisperd, the model, both sockets, whisperctl and the control
protocol are real. A follower records the state sequence as a bar would see it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import RunningDaemon, assert_heard_jfk_live, shared_audio
from whisperd.control import client
from whisperd.keys import app
from whisperd.keys.audio import QueueCapture
from whisperd.keys.config import KeysConfig
from whisperd.keys.layout import CharMap, LayoutName, decode
from whisperd.keys.service import DictationService
from whisperd.keys.shortcuts import NoKeyboards
from whisperd.keys.virtual import RecordingKeyboard

pytestmark = pytest.mark.slow
US = CharMap.for_layout(LayoutName("us"))
BLOCK = 16000 // 50 * 2  # 20 ms of s16le mono


class LiveMicrophone:
    """Plays ``pcm`` (faster than real time) and then silence until the capture stops."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.spoken = threading.Event()

    def begin(self) -> QueueCapture:
        capture = QueueCapture(16000)
        self.spoken.clear()

        def produce() -> None:
            for start in range(0, len(self.pcm), BLOCK):
                if capture.stopped:
                    return
                capture.push(self.pcm[start : start + BLOCK])
                time.sleep(0.002)
            self.spoken.set()
            while not capture.stopped:
                capture.push(b"\x00" * BLOCK)
                time.sleep(0.02)

        threading.Thread(target=produce, daemon=True).start()
        return capture

    def close(self) -> None:
        pass


@dataclass
class KeysUnderTest:
    service: DictationService
    keyboard: RecordingKeyboard
    microphone: LiveMicrophone
    control: Path
    thread: threading.Thread
    states: list[str] = field(default_factory=list)

    def whisperctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "whisperd.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WHISPERD_KEYS_SOCKET": str(self.control)},
            stdin=subprocess.DEVNULL,
        )

    def dictate(self, action: str) -> None:
        done = self.whisperctl("dictate", action)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

    def typed(self) -> str:
        return decode(US.keymap, self.keyboard.events)

    def wait_idle(self, dictations: int) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ended = not any(s.is_alive() for s in self.service.sessions)
            started = self.states.count("recording")
            if ended and started >= dictations and self.states[-1:] == ["idle"]:
                return
            time.sleep(0.05)
        pytest.fail(f"dictation did not end; states {self.states}")


@pytest.fixture(scope="module")
def jfk_pcm() -> bytes:
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(shared_audio("jfk.flac")), sampling_rate=16000)
    return bytes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture
def keys(daemon: RunningDaemon, jfk_pcm: bytes, tmp_path: Path) -> Iterator[KeysUnderTest]:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    config = KeysConfig(
        trigger="none",
        language="en",
        socket_path=str(daemon.socket_path),
        control_socket=str(run / "whisperd-keys.sock"),
        settle=0.3,
        live=False,
    )
    config.validate()
    keyboard = RecordingKeyboard()
    microphone = LiveMicrophone(jfk_pcm)
    service = app.build_service(config, keyboard, app.make_typer(config, keyboard, US), microphone)
    assert isinstance(service.source, NoKeyboards)  # no /dev/input device is opened
    thread = threading.Thread(target=app.serve_control, args=(service, config, False))
    thread.start()
    control = Path(config.control_socket)
    deadline = time.monotonic() + 60  # the first test of a run pays for cold imports
    while not control.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    under_test = KeysUnderTest(service, keyboard, microphone, control, thread)
    follower = threading.Thread(target=follow, args=(control, under_test.states), daemon=True)
    follower.start()
    # The follower's first event (the state before any dictation) must be in before the
    # test acts, or a slow machine shows it "recording" first and the order looks wrong.
    deadline = time.monotonic() + 60
    while not under_test.states and time.monotonic() < deadline:
        time.sleep(0.02)
    assert under_test.states, "the follower got no first status event"
    yield under_test
    service.stop_event.set()
    thread.join(10)
    assert not thread.is_alive()
    follower.join(10)
    assert not control.exists()  # removed at exit
    assert keyboard.held() == frozenset()  # no key left held


def follow(control: Path, states: list[str]) -> None:
    # The socket's file exists from bind(); listen() follows a moment later.
    deadline = time.monotonic() + 30
    while True:
        try:
            sock = client.connect(control)
            break
        except OSError:  # KeysNotRunning too
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with sock:
        sock.settimeout(None)
        for event in client.follow(sock):
            if not states or states[-1] != event["state"]:
                states.append(event["state"])


def ordered_within(expected: list[str], seen: list[str]) -> bool:
    position = 0
    for state in seen:
        if position < len(expected) and state == expected[position]:
            position += 1
    return position == len(expected)


def test_start_and_stop_from_a_shortcut_type_the_words(keys: KeysUnderTest) -> None:
    keys.dictate("start")
    assert keys.microphone.spoken.wait(60)
    keys.dictate("stop")
    keys.wait_idle(dictations=1)
    assert_heard_jfk_live(keys.typed())
    assert ordered_within(["idle", "recording", "transcribing", "typing", "idle"], keys.states)
    status: dict[str, Any] = client.status(keys.control)
    assert status["state"] == "idle" and status["daemon"] in ("running", "unknown")


def test_toggle_twice_types_the_words_and_again(keys: KeysUnderTest) -> None:
    for round_ in (1, 2):
        keys.dictate("toggle")
        assert keys.microphone.spoken.wait(60)
        keys.dictate("toggle")
        keys.wait_idle(dictations=round_)
    typed = keys.typed()
    half = len(typed) // 2
    # two dictations, each typed in full: the same sentence twice
    assert_heard_jfk_live(typed[:half])
    assert_heard_jfk_live(typed[half:])


def test_cancel_from_a_shortcut_types_nothing(keys: KeysUnderTest) -> None:
    keys.dictate("start")
    assert keys.microphone.spoken.wait(60)
    keys.dictate("cancel")
    keys.wait_idle(dictations=1)
    assert keys.keyboard.events == []


def test_whisperctl_says_when_whisperd_keys_is_not_running(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "dictate", "toggle"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WHISPERD_KEYS_SOCKET": str(run / "whisperd-keys.sock")},
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "whisperd-keys is not running" in done.stderr
    assert "systemctl --user start whisperd-keys" in done.stderr
    assert "Traceback" not in done.stderr
