"""What is typed for fixed sentences (golden), fallbacks, pacing, release on errors."""

from __future__ import annotations

import os
import threading

import pytest
from evdev import ecodes

from tests.unit.keys.keys_fakes import DATA
from whisperd.keys.keynames import key_name
from whisperd.keys.layout import CharMap, LayoutName
from whisperd.keys.typer import Fallback, Typer
from whisperd.keys.virtual import RecordingKeyboard

SENTENCE = "Ask not, Grüße! 42 €?"


class FakeClipboard:
    def __init__(self, works: bool = True) -> None:
        self.works = works
        self.copied: list[str] = []

    def copy(self, text: str) -> bool:
        self.copied.append(text)
        return self.works


def typed(
    layout: LayoutName, text: str, **kwargs: object
) -> tuple[list[str], RecordingKeyboard, object]:
    keyboard = RecordingKeyboard()
    sleeps: list[float] = []
    typer = Typer(keyboard, CharMap.for_layout(layout), sleep=sleeps.append, **kwargs)  # type: ignore[arg-type]
    report = typer.type_text(text)
    assert keyboard.held() == frozenset()
    names = [f"{key_name(code)} {'down' if value else 'up'}" for code, value in keyboard.events]
    return names, keyboard, report


@pytest.mark.parametrize("layout", [LayoutName("us"), LayoutName("de")], ids=str)
def test_golden_sentence(layout: LayoutName) -> None:
    names, _, _ = typed(layout, SENTENCE, fallback=Fallback.UNICODE, delay=0)
    got = "\n".join(names) + "\n"
    golden = DATA / f"typed_{layout.layout}.golden"
    if os.environ.get("WHISPERD_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(got)
    assert got == golden.read_text()


def test_unicode_fallback_sequence() -> None:
    names, _, report = typed(LayoutName("us"), "é", fallback=Fallback.UNICODE, delay=0)
    assert names == [
        "KEY_LEFTCTRL down",
        "KEY_LEFTSHIFT down",
        "KEY_U down",
        "KEY_U up",
        "KEY_LEFTSHIFT up",
        "KEY_LEFTCTRL up",
        "KEY_E down",
        "KEY_E up",
        "KEY_9 down",
        "KEY_9 up",
        "KEY_SPACE down",
        "KEY_SPACE up",
    ]
    assert (report.typed, report.fallback, report.skipped) == (0, 1, 0)  # type: ignore[attr-defined]


def test_unicode_fallback_impossible_is_counted_not_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    # Russian has no a-f keys for the hex digits of U+00E9.
    _, keyboard, report = typed(LayoutName("ru"), "éж", fallback=Fallback.UNICODE, delay=0)
    assert (report.typed, report.fallback, report.skipped) == (1, 0, 1)  # type: ignore[attr-defined]
    assert "1 character(s) skipped" in caplog.text
    assert "é" not in caplog.text, "never log the text unless debug_log_text is on"


def test_clipboard_fallback_groups_runs() -> None:
    clipboard = FakeClipboard()
    names, _, report = typed(
        LayoutName("us"), "a☃☃b", fallback=Fallback.CLIPBOARD, delay=0, clipboard=clipboard
    )
    assert clipboard.copied == ["☃☃"]
    assert names == [
        "KEY_A down",
        "KEY_A up",
        "KEY_LEFTCTRL down",
        "KEY_V down",
        "KEY_V up",
        "KEY_LEFTCTRL up",
        "KEY_B down",
        "KEY_B up",
    ]
    assert report.fallback == 2 and report.methods == ["clipboard"]  # type: ignore[attr-defined]


def test_clipboard_missing_counts_skips() -> None:
    _, _, report = typed(
        LayoutName("us"), "☃", fallback=Fallback.CLIPBOARD, delay=0, clipboard=FakeClipboard(False)
    )
    assert report.skipped == 1  # type: ignore[attr-defined]


def test_skip_fallback_and_debug_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    _, _, report = typed(
        LayoutName("us"), "x☃", fallback=Fallback.SKIP, delay=0, debug_log_text=True
    )
    assert report.skipped == 1 and report.typed == 1  # type: ignore[attr-defined]
    assert "☃" in caplog.text


def test_pacing_sleeps_after_every_event() -> None:
    keyboard = RecordingKeyboard()
    sleeps: list[float] = []
    Typer(
        keyboard, CharMap.for_layout(LayoutName("us")), delay=0.007, sleep=sleeps.append
    ).type_text("Hi")
    assert len(sleeps) == len(keyboard.events) == 6
    assert set(sleeps) == {0.007}


def test_keys_released_when_the_keyboard_fails() -> None:
    class Flaky(RecordingKeyboard):
        def _write(self, code: int, value: int) -> None:
            if code == ecodes.KEY_B and value == 1:
                raise OSError("device gone")
            super()._write(code, value)

    keyboard = Flaky()
    typer = Typer(keyboard, CharMap.for_layout(LayoutName("us")), delay=0, sleep=lambda s: None)
    with pytest.raises(OSError):
        typer.type_text("AB")
    assert keyboard.held() == frozenset()
    assert keyboard.events[-1] == (ecodes.KEY_LEFTSHIFT, 0)


def test_cancel_stops_between_characters() -> None:
    keyboard = RecordingKeyboard()
    cancel = threading.Event()
    typer = Typer(
        keyboard, CharMap.for_layout(LayoutName("us")), delay=0, sleep=lambda s: cancel.set()
    )
    report = typer.type_text("abc", cancel=cancel)
    assert report.typed == 1 and keyboard.held() == frozenset()


def test_release_all_and_close() -> None:
    keyboard = RecordingKeyboard()
    keyboard.emit(ecodes.KEY_A, 1)
    keyboard.emit(ecodes.KEY_LEFTSHIFT, 1)
    keyboard.emit(ecodes.KEY_A, 2)
    keyboard.close()
    assert keyboard.events[-2:] == [(ecodes.KEY_A, 0), (ecodes.KEY_LEFTSHIFT, 0)]
    assert keyboard.destroyed
    keyboard.emit(ecodes.KEY_A, 1)  # ignored after close
    assert keyboard.held() == frozenset()


def test_interrupt_stops_before_the_next_character_and_says_how_far() -> None:
    keyboard = RecordingKeyboard()
    typer = Typer(keyboard, CharMap.for_layout(LayoutName("us")), delay=0, sleep=lambda s: None)
    checks: list[int] = []

    def shift_pressed_after_two() -> bool:
        checks.append(1)
        return len(checks) > 2

    report = typer.type_text("abcd", interrupt=shift_pressed_after_two)
    assert report.consumed == 2 and report.typed == 2
    assert [c for c, v in keyboard.events if v == 1] == [ecodes.KEY_A, ecodes.KEY_B]
    assert keyboard.held() == frozenset()
    assert typer.type_text("abcd").consumed == 4
