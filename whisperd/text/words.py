"""Words as the text rules see them: Unicode word characters and whitespace-separated
chunks split into leading punctuation, the word, and trailing punctuation.

Python's ``\\b`` treats a combining accent (``e`` + U+0301) as a boundary, so a rule for
"cafe" would match inside a decomposed "café"; here a word character is any letter,
digit or mark (Unicode categories L*, N*, M*), and every text is NFC-normalised first.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


def is_word_char(char: str) -> bool:
    """A letter, a digit or a combining mark, in any script."""
    return unicodedata.category(char)[0] in "LNM"


def normalize(text: str) -> str:
    """NFC: "é" typed as e + U+0301 and as U+00E9 become the same string."""
    return unicodedata.normalize("NFC", text)


def fold(word: str) -> str:
    """The form words are compared in: NFC, case-folded (Straße = STRASSE, Ω = ω)."""
    return normalize(word).casefold()


@dataclass(frozen=True)
class Chunk:
    """One whitespace-separated piece of text: ``lead`` + ``core`` + ``trail``.

    ``core`` runs from the first to the last word character, so inner apostrophes and
    hyphens stay in the word ("don't", "e-mail"); ``lead``/``trail`` are the punctuation
    the model wrote around it. A chunk without any word character ("--", "…") is all
    ``lead``.
    """

    lead: str
    core: str
    trail: str

    @property
    def key(self) -> str:
        return fold(self.core)

    @property
    def text(self) -> str:
        return self.lead + self.core + self.trail


def chunk(text: str) -> Chunk:
    first = next((i for i, c in enumerate(text) if is_word_char(c)), None)
    if first is None:
        return Chunk(text, "", "")
    last = max(i for i, c in enumerate(text) if is_word_char(c))
    return Chunk(text[:first], text[first : last + 1], text[last + 1 :])


def chunks(text: str) -> list[Chunk]:
    return [chunk(part) for part in normalize(text).split()]


def phrase_key(phrase: str) -> tuple[str, ...]:
    """A configured phrase ("New  Line") as the words it matches (("new", "line"))."""
    return tuple(fold(word) for word in phrase.split())
