"""Spoken punctuation with the real model: espeak-ng says the commands, the daemon
transcribes, the Shaper turns the pieces into key actions, and a recording keyboard shows
what an application would receive (Enter included). Words are compared loosely: the
model's exact text is not pinned."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from tests.conftest import RunningDaemon, espeak, words
from tests.integration.support import whisperctl as run_whisperctl
from whisperd.client import Client
from whisperd.config import TextConfig
from whisperd.text import Shaper, shape_pieces

# The words said; espeak-ng pauses at the commas, as someone dictating pauses briefly.
SAID = "Hello, comma, world, new line, bye, period."
COMMAND_WORDS = {"comma", "new", "line", "period"}
SPOKEN = TextConfig(spoken_punctuation=True)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak(SAID, tmp_path_factory.mktemp("spoken") / "commands.wav", speed=140)


def dictate(daemon: RunningDaemon, path: Path) -> list[str]:
    """The wav streamed as whisperd-keys streams (PCM, its options); the pieces the
    daemon sends (segments), or the result's text when it sent none."""
    with wave.open(str(path)) as wav:
        pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
    with Client.connect(str(daemon.socket_path), timeout=120, autostart=False) as client:
        pieces: list[str] = []
        # whisperd-keys' options, with the vocabulary the [text] section sends
        options = {"without_timestamps": True, "vocabulary": SPOKEN.request_vocabulary()}
        stream = client.start_stream(rate, 1, "s16le", options)
        for start in range(0, len(pcm), 6400):
            stream.send(pcm[start : start + 6400])
        result = stream.finish(lambda segment: pieces.append(str(segment["text"])))
    return pieces or [str(result["text"])]


def check_shaped(text: str, heard_as: object) -> None:
    """ "Hello, world" Enter "Bye.": the marks and the line break, the words loosely.
    The model punctuates on its own where espeak-ng pauses ("Bye, dear." on one AVX2
    CPU), so a comma it adds is not counted; no line may end on one, and no two marks
    may stand together (the model's pause comma and the command's are one)."""
    why = f"typed {text!r} for the model's {heard_as!r}"
    first, newline, second = text.partition("\n")
    assert newline, why
    assert "," in first and not first.rstrip().endswith(","), why
    assert second.rstrip().endswith("."), why
    # the model's pause comma and the command's merge: never two marks in a row
    assert not re.search(r"[,.;:?!]\s*[,.;:?!]", text), why
    assert not COMMAND_WORDS & set(words(text)), why
    said = words(text)
    assert "world" in said and said.index("world") < len(words(first)), why


def whisperctl(tmp_path: Path, daemon: RunningDaemon, config: str, *args: str) -> str:
    return run_whisperctl(tmp_path, daemon, config, *args, timeout=120)


def test_dictation_types_punctuation_and_presses_enter(daemon: RunningDaemon, spoken: Path) -> None:
    pytest.importorskip("evdev")
    from evdev import ecodes

    from whisperd.keys.layout import CharMap, LayoutName, decode
    from whisperd.keys.typer import Typer
    from whisperd.keys.virtual import RecordingKeyboard
    from whisperd.text.keyboard import perform

    pieces = dictate(daemon, spoken)
    shaper = Shaper(SPOKEN.rules())
    actions = [a for i, p in enumerate(pieces) for a in shaper.feed(p, i == len(pieces) - 1)]
    keyboard = RecordingKeyboard()
    charmap = CharMap.for_layout(LayoutName("us"))
    perform(actions, Typer(keyboard, charmap, delay=0))
    assert (ecodes.KEY_ENTER, 1) in keyboard.events
    assert keyboard.held() == frozenset()
    typed = decode(charmap.keymap, keyboard.events)
    check_shaped(typed, pieces)
    # the same pieces shaped as a whole give the same text
    assert shape_pieces(pieces, SPOKEN.rules()) == typed


def test_whisperctl_applies_the_rules_unless_raw(
    daemon: RunningDaemon, spoken: Path, tmp_path: Path
) -> None:
    config = (
        "[text]\nspoken_punctuation = true\n"
        'replacements = [{ heard = "bye", written = "Goodbye" }]\n'
    )
    shaped = whisperctl(tmp_path, daemon, config, "transcribe", str(spoken)).rstrip("\n")
    raw = whisperctl(tmp_path, daemon, config, "transcribe", "--raw", str(spoken))
    check_shaped(shaped, raw)
    assert "Goodbye" in shaped or "bye" not in words(shaped), repr(shaped)
    assert "\n" not in raw.rstrip("\n") and "Goodbye" not in raw, repr(raw)


def test_whisperctl_runs_the_hook(daemon: RunningDaemon, spoken: Path, tmp_path: Path) -> None:
    upper = tmp_path / "upper.sh"
    upper.write_text("#!/bin/sh\ntr a-z A-Z\n")
    upper.chmod(0o755)
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 1\n")
    failing.chmod(0o755)
    raw = whisperctl(tmp_path, daemon, "", "transcribe", str(spoken)).strip()
    hooked = whisperctl(
        tmp_path, daemon, f'[text]\nhook = ["{upper}"]\n', "transcribe", str(spoken)
    )
    assert hooked.strip() == raw.upper()
    failed = whisperctl(
        tmp_path, daemon, f'[text]\nhook = ["{failing}"]\n', "transcribe", str(spoken)
    )
    assert failed.strip() == raw


def test_whisperd_keys_types_the_rules_with_the_real_daemon(
    daemon: RunningDaemon, spoken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service of whisperd-keys (microphone and keyboards doubled): its live stream
    to the real daemon, the [text] rules on each committed piece, the typed keys.

    All the audio arrives at once, so where the daemon cuts pieces depends on how fast it
    decodes, and so does what the model hears at a cut ("new light" for "new line" once on
    a loaded AVX2 machine). So the keys typed are compared with the rules applied to the
    pieces the daemon committed in this run (two paths, one machine); the marks from the
    model's words are checked by the other tests here, on paths that do not depend on
    timing."""
    pytest.importorskip("evdev")
    from evdev import ecodes

    from tests.unit.keys.keys_fakes import FakeRecorder, ReplaySource
    from whisperd.keys.config import KeysConfig
    from whisperd.keys.layout import CharMap, LayoutName, decode
    from whisperd.keys.service import DictationService
    from whisperd.keys.session import Session
    from whisperd.keys.trigger import KeyEvent, Mode, TriggerMachine
    from whisperd.keys.typer import Typer
    from whisperd.keys.virtual import RecordingKeyboard

    committed: list[str] = []  # what the session hands to the typist, in order
    on_commit = Session._on_commit

    def recording_commits(session: Session, event: dict[str, object]) -> None:
        text = str(event.get("text") or "").strip()
        if text or event.get("final"):
            committed.append(text)
        on_commit(session, event)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "_on_commit", recording_commits)
    with wave.open(str(spoken)) as wav:
        pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
    keyboard = RecordingKeyboard()
    charmap = CharMap.for_layout(LayoutName("us"))

    def connect() -> Client:
        return Client.connect(str(daemon.socket_path), timeout=120, autostart=False)

    service = DictationService(
        TriggerMachine(combo=(ecodes.KEY_INSERT,), mode=Mode.HOLD, max_recording=60),
        ReplaySource(),
        FakeRecorder([pcm[i : i + 6400] for i in range(0, len(pcm), 6400)], rate),
        keyboard,
        Typer(keyboard, charmap, delay=0),
        connect,  # type: ignore[arg-type]
        KeysConfig(language="en", live=True),
        text=SPOKEN,
    )
    service.step([KeyEvent("/dev/input/event3", ecodes.KEY_INSERT, 1, 0.0)])
    service.step([KeyEvent("/dev/input/event3", ecodes.KEY_INSERT, 0, 9.0)])
    for session in service.sessions:
        session.join(120)
        assert not session.is_alive()
    typed = decode(charmap.keymap, keyboard.events)
    assert keyboard.held() == frozenset()
    assert committed, "the daemon committed nothing"
    # Enter included: the rules' "\n" is typed as the Enter key
    assert typed == shape_pieces(committed, SPOKEN.rules()), f"pieces {committed!r}"
    assert "world" in words(typed), f"pieces {committed!r}"  # the words, loosely


def test_whisperctl_shapes_standard_input(
    daemon: RunningDaemon, spoken: Path, tmp_path: Path
) -> None:
    config = "[text]\nspoken_punctuation = true\n"
    (tmp_path / "whisperd").mkdir(exist_ok=True)
    (tmp_path / "whisperd" / "config.toml").write_text(config)

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "whisperd.cli", "--socket", str(daemon.socket_path), *args],
            capture_output=True,
            input=spoken.read_bytes(),
            timeout=120,
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()

    file_text = run("transcribe", str(spoken)).rstrip("\n")
    check_shaped(file_text, "file")
    assert run("transcribe", "-").rstrip("\n") == file_text  # the same audio, the same rules
    live = run("transcribe", "--live", "-")
    # one line per piece as the rules made it: the words and marks, no command words
    assert not COMMAND_WORDS & set(words(live)), live
    assert "," in live and live.rstrip().endswith("."), live
    raw_live = run("transcribe", "--raw", "--live", "-")  # --raw: the model's words
    assert COMMAND_WORDS & set(words(raw_live)) and "\n\n" not in raw_live, raw_live
