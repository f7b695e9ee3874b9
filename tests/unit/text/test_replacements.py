"""Golden cases of the replacements: whole words only, any script, in order, case kept."""

from __future__ import annotations

import pytest

from whisperd.text.replacements import Replacement, Replacer, RuleError


def apply(rules: list[tuple[str, str]], text: str) -> str:
    return Replacer([Replacement(h, w) for h, w in rules]).apply(text)


@pytest.mark.parametrize(
    ("rules", "text", "expected"),
    [
        # FluidVoice #880: a rule must never match inside a word.
        ([("ean", "aun")], "I mean it, Sean.", "I mean it, Sean."),
        ([("sean", "Shaun")], "I mean it, Sean.", "I mean it, Shaun."),
        ([("sean", "Shaun")], "Seanna and Sean's dog", "Seanna and Shaun's dog"),
        ([("sean", "Shaun")], "SEAN, sean and sEaN", "Shaun, Shaun and Shaun"),
        ([("sean", "Shaun")], "oceanic seance", "oceanic seance"),
        # the written form's case is kept exactly, whatever was heard
        ([("comfy eye", "ComfyUI")], "Comfy Eye and COMFY EYE", "ComfyUI and ComfyUI"),
        ([("Kubernetes", "k8s")], "Kubernetes.", "k8s."),
        # phrases: any whitespace or a hyphen between the words, never a word gap inside
        ([("comfy eye", "ComfyUI")], "comfy  eye, comfy-eye", "ComfyUI, ComfyUI"),
        ([("comfy eye", "ComfyUI")], "comfy eyes and uncomfy eye", "comfy eyes and uncomfy eye"),
        # accented words: a rule for "cafe" is not "café", and "é" as e + U+0301 is one letter
        ([("cafe", "Café")], "the cafe\u0301 and the cafe", "the café and the Café"),
        ([("café", "CAFÉ")], "un cafe\u0301 noir", "un CAFÉ noir"),
        ([("resume", "résumé")], "presume resume", "presume résumé"),
        ([("jose", "José")], "Josef and jose", "Josef and José"),
        # Cyrillic: case-insensitive, whole words
        ([("мир", "Мир")], "мировой МИР мир.", "мировой Мир Мир."),
        ([("ток", "Ток")], "поток ток", "поток Ток"),
        # Greek and CJK neighbours are word characters too
        ([("ab", "X")], "αab abα ab", "αab abα X"),
        ([("ab", "X")], "中ab ab中 ab", "中ab ab中 X"),
        # digits count as word characters: "4" in "400" is not the number 4
        ([("4", "four")], "400 and 4.", "400 and four."),
        # rules with punctuation at their edges
        ([("c plus plus", "C++")], "c plus plus code", "C++ code"),
        ([("C++", "C plus plus")], "C++ code, C++x", "C plus plus code, C plus plusx"),
        # in order: each rule sees the previous one's output
        ([("a", "b"), ("b", "c")], "a b", "c c"),
        ([("b", "c"), ("a", "b")], "a b", "b c"),
        # a match may start inside a rejected one
        ([("an", "AN")], "ban an", "ban AN"),
        # empty and whitespace texts
        ([("sean", "Shaun")], "", ""),
        ([("sean", "Shaun")], "   ", "   "),
        # the written form may be empty: the word goes (the space stays)
        ([("um", "")], "so um yes", "so  yes"),
    ],
)
def test_golden(rules: list[tuple[str, str]], text: str, expected: str) -> None:
    assert apply(rules, text) == expected


def test_regex_only_when_marked() -> None:
    # a plain rule is literal: "." is a dot, not any character
    assert apply([("a.b", "X")], "a.b axb") == "X axb"
    regex = Replacer([Replacement(r"(\d+) percent", r"\1 %", regex=True)])
    assert regex.apply("50 percent of 7 percent") == "50 % of 7 %"
    # applied as written: no case-insensitivity unless asked
    assert Replacer([Replacement("Foo", "x", regex=True)]).apply("foo Foo") == "foo x"
    assert Replacer([Replacement("(?i)foo", "x", regex=True)]).apply("foo Foo") == "x x"


def test_bad_rules_are_refused() -> None:
    with pytest.raises(RuleError, match="regular expression"):
        Replacement("(", "x", regex=True).compile()
    with pytest.raises(RuleError, match="heard word"):
        Replacement("  ", "x").compile()


def test_very_long_text_is_linear_enough() -> None:
    text = "mean Sean " * 20000
    out = apply([("sean", "Shaun"), ("ean", "X")], text)
    assert out == "mean Shaun " * 20000


def test_phrases_for_holding_back() -> None:
    replacer = Replacer([Replacement("comfy eye", "ComfyUI"), Replacement("x+", "y", regex=True)])
    assert replacer.phrases() == [("comfy", "eye")]
