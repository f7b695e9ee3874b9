"""whisperd-keys as a program: --type, SIGTERM, cleanup, with the hardware doubled."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from whisperd.keys import app as keys_main
from whisperd.keys.audio import AudioUnavailable
from whisperd.keys.layout import CharMap, LayoutName, decode
from whisperd.keys.virtual import RecordingKeyboard


@pytest.fixture()
def fake_hw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[RecordingKeyboard]]:
    created: list[RecordingKeyboard] = []

    def open_keyboard(backend: str) -> RecordingKeyboard:
        keyboard = RecordingKeyboard()
        created.append(keyboard)
        return keyboard

    def no_mic(*args: object) -> None:
        raise AudioUnavailable("no microphone here")

    monkeypatch.setattr(keys_main, "open_virtual_keyboard", open_keyboard)
    monkeypatch.setattr(keys_main, "SoundDeviceRecorder", no_mic)
    monkeypatch.setattr(keys_main, "DEVICE_SETTLE_SECONDS", 0)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield created
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_type_once(fake_hw: list[RecordingKeyboard]) -> None:
    assert keys_main.main(["--layout", "de", "--type", "Grüße, Köln!"]) == 0
    [keyboard] = fake_hw
    assert decode(CharMap.for_layout(LayoutName("de")).keymap, keyboard.events) == "Grüße, Köln!"
    assert keyboard.destroyed and keyboard.held() == frozenset()


def test_type_once_reports_skips(fake_hw: list[RecordingKeyboard]) -> None:
    assert keys_main.main(["--layout", "us", "--fallback", "skip", "--type", "☃"]) == 1


def test_sigterm_stops_the_service_cleanly(
    fake_hw: list[RecordingKeyboard], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    code = keys_main.main(
        ["--layout", "us", "--keyboard", str(tmp_path / "none"), "--suppress", "none"]
    )
    timer.join()
    assert code == 0
    [keyboard] = fake_hw
    assert keyboard.destroyed
    assert "SIGTERM: stopping" in caplog.text
    assert "no microphone here; trying again" in caplog.text


def test_text_section_is_read_and_checked(
    fake_hw: list[RecordingKeyboard], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "whisperd").mkdir()
    config = tmp_path / "whisperd" / "config.toml"
    config.write_text('[text]\nvocabulary = ["ComfyUI"]\nspoken_punctuation = true\n')
    args = keys_main.build_parser().parse_args(["--config", str(config)])
    _, text = keys_main.load_config(args)
    assert text.vocabulary == ["ComfyUI"] and text.spoken_punctuation
    config.write_text('[text]\nreplacements = [{ heard = "x" }]\n')
    assert keys_main.main(["--config", str(config), "--layout", "us", "--type", "x"]) == 2
    assert "text.replacements[0]" in capsys.readouterr().err


def test_list_keyboards_with_none_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """It printed nothing at all on a machine without input devices."""
    assert keys_main.print_keyboards([]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no input devices" in err
    assert keys_main.print_keyboards([("/dev/input/event3", "AT keyboard: keyboard")]) == 0
    assert capsys.readouterr().out == "/dev/input/event3  AT keyboard: keyboard\n"
