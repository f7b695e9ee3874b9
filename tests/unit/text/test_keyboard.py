"""The Shaper's actions on a recording virtual keyboard, read back through the XKB layout."""

from __future__ import annotations

import pytest

pytest.importorskip("evdev")

from evdev import ecodes  # noqa: E402

from whisperd.keys.layout import CharMap, LayoutName, decode  # noqa: E402
from whisperd.keys.typer import Typer  # noqa: E402
from whisperd.keys.virtual import RecordingKeyboard  # noqa: E402
from whisperd.text import Erase, Key, Shaper, TextRules, Type  # noqa: E402
from whisperd.text.keyboard import perform  # noqa: E402


def typed(actions: list[object]) -> tuple[str, RecordingKeyboard]:
    keyboard = RecordingKeyboard()
    charmap = CharMap.for_layout(LayoutName("us"))
    perform(actions, Typer(keyboard, charmap, delay=0))  # type: ignore[arg-type]
    return decode(charmap.keymap, keyboard.events), keyboard


def test_enter_and_backspace_are_key_taps() -> None:
    text, keyboard = typed([Type("Hello, world"), Key("Enter"), Type("Bye."), Erase(1)])
    assert (ecodes.KEY_ENTER, 1) in keyboard.events
    assert keyboard.events.count((ecodes.KEY_BACKSPACE, 1)) == 1
    assert text.startswith("Hello, world\nBye.")
    assert keyboard.held() == frozenset()


def test_a_dictation_with_scratch_that() -> None:
    shaper = Shaper(TextRules.build(spoken_punctuation=True))
    actions = shaper.feed("first line new line", True) + shaper.feed("wrong scratch that", True)
    actions += shaper.feed("scratch that second", True)
    # "wrong" was never typed; the second "scratch that" takes the first dictation back
    assert actions == [Type("first line"), Key("Enter"), Erase(11), Type("second")]
    text, keyboard = typed(actions)  # type: ignore[arg-type]
    assert keyboard.events.count((ecodes.KEY_BACKSPACE, 1)) == 11
    assert backspaced(text) == "second"


def backspaced(text: str) -> str:
    """What an editor shows after the decoded keys (BackSpace reads as "\\b")."""
    out: list[str] = []
    for char in text:
        if char == "\b":
            if out:
                out.pop()
        else:
            out.append(char)
    return "".join(out)


def test_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match="no key"):
        typed([Key("Delete")])
