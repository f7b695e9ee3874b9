"""Typing round trips through real xkbcommon keymaps, and layout detection."""

from __future__ import annotations

import pytest
from evdev import ecodes

from whisperd.keys.layout import (
    CharMap,
    KeyStroke,
    LayoutError,
    LayoutName,
    compile_keymap,
    decode,
    detect_layout,
    parse_default_keyboard,
    parse_gnome,
    parse_kxkbrc,
    parse_localectl,
)
from whisperd.keys.typer import Fallback, Typer
from whisperd.keys.virtual import RecordingKeyboard

ROUND_TRIPS = {
    ("us", ""): "Hello, World! Ask not what your country can do for you; 1234567890 (50% off) "
    "#1 @home ~/a_b-c+d=e [x]{y}|z\\ \"q\" 'r' <s>? `t`^&*$",
    ("de", ""): "Grüße aus Köln: Äpfel, Öl und Übermaß kosten 5 €! äöüß ÄÖÜ @ {x} [y] \\ | ~ "
    "1234567890?",
    ("fr", ""): "Où est l'élève ? Voilà : éèàçù, Bonjour 1234567890 & @ € (a) [b] {c} #d %e !",
    ("cz", ""): "Dobrý den: ěščřžýáíé ů ú, Hello World! 1234567890 @ € (a) ?",
    ("ru", ""): "Привет, мир! Русский текст: съешь же ещё этих мягких французских булок. "
    "1234567890 ?",
    ("us", "dvorak"): "The quick brown fox jumps over the lazy dog. THE QUICK 0123456789 "
    "<>?\"{}|:;,.'-=/",
}


@pytest.fixture(scope="module")
def charmaps() -> dict[tuple[str, str], CharMap]:
    return {key: CharMap.for_layout(LayoutName(*key)) for key in ROUND_TRIPS}


def type_events(
    charmap: CharMap, text: str, fallback: Fallback = Fallback.SKIP
) -> list[tuple[int, int]]:
    keyboard = RecordingKeyboard()
    typer = Typer(keyboard, charmap, fallback=fallback, delay=0, sleep=lambda s: None)
    report = typer.type_text(text)
    assert keyboard.held() == frozenset(), "every key pressed must be released"
    assert report.skipped == 0 and report.fallback == 0, "the layout must type all of it"
    return keyboard.events


@pytest.mark.parametrize("layout", list(ROUND_TRIPS), ids=lambda k: "-".join(filter(None, k)))
def test_round_trip(layout: tuple[str, str], charmaps: dict[tuple[str, str], CharMap]) -> None:
    text = ROUND_TRIPS[layout]
    events = type_events(charmaps[layout], text)
    assert decode(charmaps[layout].keymap, events) == text
    downs = sum(1 for _, value in events if value == 1)
    ups = sum(1 for _, value in events if value == 0)
    assert downs == ups


def test_layouts_differ_where_they_must(charmaps: dict[tuple[str, str], CharMap]) -> None:
    us, de, fr = charmaps["us", ""], charmaps["de", ""], charmaps["fr", ""]
    dvorak = charmaps["us", "dvorak"]
    assert us.stroke("a") == KeyStroke(ecodes.KEY_A)
    assert fr.stroke("a") == KeyStroke(ecodes.KEY_Q)  # AZERTY
    assert de.stroke("z") == KeyStroke(ecodes.KEY_Y)  # QWERTZ
    assert de.stroke("@") == KeyStroke(ecodes.KEY_Q, (ecodes.KEY_RIGHTALT,))  # AltGr
    assert fr.stroke("1") == KeyStroke(ecodes.KEY_1, (ecodes.KEY_LEFTSHIFT,))
    assert dvorak.stroke("v") == KeyStroke(ecodes.KEY_DOT)
    assert charmaps["ru", ""].stroke("a") is None


def test_own_letters_are_direct(charmaps: dict[tuple[str, str], CharMap]) -> None:
    for layout, letters in {
        ("de", ""): "äöüß",
        ("fr", ""): "éèàç",
        ("cz", ""): "ěščřžýáíé",
        ("ru", ""): "русскийтекст",
    }.items():
        for char in letters:
            assert char in charmaps[layout], (layout, char)


def test_control_characters_and_paste_letter(charmaps: dict[tuple[str, str], CharMap]) -> None:
    us = charmaps["us", ""]
    assert us.stroke("\n") == KeyStroke(ecodes.KEY_ENTER)
    assert us.stroke("\t") == KeyStroke(ecodes.KEY_TAB)
    assert charmaps["us", "dvorak"].keysym_stroke("v", ecodes.KEY_V).code == ecodes.KEY_DOT
    assert charmaps["ru", ""].keysym_stroke("v", ecodes.KEY_V).code == ecodes.KEY_V


def test_unknown_layout_is_a_clear_error() -> None:
    with pytest.raises(LayoutError, match="xkb-data"):
        compile_keymap(LayoutName("no-such-layout"))


def test_detect_layout_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_layout("fr", "bepo") == LayoutName("fr", "bepo", "configuration")
    env = {"XKB_DEFAULT_LAYOUT": "de,us", "XKB_DEFAULT_VARIANT": "nodeadkeys,"}
    assert detect_layout(environ=env) == LayoutName("de", "nodeadkeys", "environment")
    monkeypatch.setattr("whisperd.keys.layout._from_gnome", lambda: None)
    monkeypatch.setattr("whisperd.keys.layout._from_kde", lambda path: None)
    monkeypatch.setattr("whisperd.keys.layout._from_localectl", lambda: None)
    monkeypatch.setattr("whisperd.keys.layout._from_default_keyboard", lambda path: None)
    assert detect_layout(environ={}) == LayoutName("us", "", "default")


def test_parse_system_settings() -> None:
    out = "   System Locale: LANG=de_DE.UTF-8\n       X11 Layout: cz\n      X11 Variant: qwerty\n"
    assert parse_localectl(out) == LayoutName("cz", "qwerty", "localectl")
    assert parse_localectl("   System Locale: n/a\n") is None
    text = 'XKBMODEL="pc105"\nXKBLAYOUT="ru,us"\nXKBVARIANT=""\nXKBOPTIONS=""\n'
    assert parse_default_keyboard(text) == LayoutName("ru", "", "/etc/default/keyboard")
    assert parse_default_keyboard("") is None


def test_xkb_options_move_the_altgr_level() -> None:
    plain = CharMap.for_layout(LayoutName("de"))
    compose = CharMap.for_layout(LayoutName("de", options="compose:ralt"))
    caps_lv3 = CharMap.for_layout(LayoutName("de", options="lv3:caps_switch,compose:ralt"))
    assert plain.stroke("@") == KeyStroke(ecodes.KEY_Q, (ecodes.KEY_RIGHTALT,))
    assert compose.stroke("@") is not None
    assert ecodes.KEY_RIGHTALT not in compose.stroke("@").modifiers  # type: ignore[union-attr]
    assert caps_lv3.stroke("@") == KeyStroke(ecodes.KEY_Q, (ecodes.KEY_CAPSLOCK,))
    text = "Grüße @ € {x}"
    for charmap in (compose, caps_lv3):
        events = type_events(charmap, text)
        assert decode(charmap.keymap, events) == text


def test_options_detected_with_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"XKB_DEFAULT_LAYOUT": "de", "XKB_DEFAULT_OPTIONS": "compose:ralt"}
    assert detect_layout(environ=env).options == "compose:ralt"
    assert detect_layout(environ=env, options="lv3:caps_switch").options == "lv3:caps_switch"
    out = "       X11 Layout: fr\n      X11 Options: compose:menu\n"
    assert parse_localectl(out) == LayoutName("fr", "", "localectl", "compose:menu")
    text = 'XKBLAYOUT="de"\nXKBOPTIONS="lv3:ralt_switch"\n'
    assert parse_default_keyboard(text) == LayoutName(
        "de", "", "/etc/default/keyboard", "lv3:ralt_switch"
    )


def test_desktop_settings() -> None:
    assert parse_gnome("[('xkb', 'de+nodeadkeys'), ('xkb', 'us')]\n", "['compose:ralt']\n") == (
        LayoutName("de", "nodeadkeys", "GNOME", "compose:ralt")
    )
    assert parse_gnome("@a(ss) []\n", "@as []\n") is None
    assert parse_gnome("[('ibus', 'anthy'), ('xkb', 'fr')]", "") == LayoutName("fr", "", "GNOME")
    kde = (
        "[Layout]\nLayoutList=cz,us\nVariantList=qwerty,\nOptions=grp:alt_shift_toggle\nUse=true\n"
    )
    assert parse_kxkbrc(kde) == LayoutName("cz", "qwerty", "KDE", "grp:alt_shift_toggle")
    assert parse_kxkbrc("[Layout]\nUse=false\nLayoutList=de\n") is None
