"""Replacements: "heard → written" rules, applied in order (docs/text.md).

A plain rule matches whole words and phrases only, whatever their case: "sean" matches
"Sean" and "SEAN" but never the "sean" in "Seanna" or the "mean" of a rule "ean", in
any script (word characters are letters, digits and marks: ``words.is_word_char``).
Between the words of a phrase the text may have any whitespace or a hyphen ("comfy
eye", "comfy-eye"). The written form replaces the match exactly as configured, case
included. A rule is a regular expression only when it says so (``regex = ...``); it is
then applied as written (add ``(?i)`` for case-insensitivity), with ``\\1`` group
references in the written form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from whisperd.text.words import is_word_char, normalize

WORD_GAP = r"(?:\s*-\s*|\s+)"


class RuleError(ValueError):
    """A replacement rule that cannot be used; the message says why."""


@dataclass(frozen=True)
class Replacement:
    heard: str
    written: str
    regex: bool = False

    def compile(self) -> CompiledRule:
        if self.regex:
            try:
                return CompiledRule(re.compile(self.heard), self.written, None)
            except re.error as exc:
                raise RuleError(f"regular expression {self.heard!r}: {exc}") from None
        words = normalize(self.heard).split()
        if not words:
            raise RuleError("a rule needs a heard word or phrase")
        pattern = re.compile(WORD_GAP.join(re.escape(w) for w in words), re.IGNORECASE)
        edges = (is_word_char(words[0][0]), is_word_char(words[-1][-1]))
        return CompiledRule(pattern, normalize(self.written), edges)

    @property
    def words(self) -> tuple[str, ...]:
        """The heard phrase's words (empty for a regular expression)."""
        return () if self.regex else tuple(normalize(self.heard).split())


@dataclass(frozen=True)
class CompiledRule:
    pattern: re.Pattern[str]
    written: str
    edges: tuple[bool, bool] | None  # None: a regular expression, no word check

    def apply(self, text: str) -> str:
        if self.edges is None:
            return self.pattern.sub(self.written, text)
        out: list[str] = []
        done = 0
        position = 0
        while (found := self.pattern.search(text, position)) is not None:
            start, end = found.span()
            if self._whole(text, start, end):
                out.append(text[done:start])
                out.append(self.written)
                done = position = end
            else:
                # Not a whole word here; a match may still start inside this one.
                position = start + 1
        out.append(text[done:])
        return "".join(out)

    def _whole(self, text: str, start: int, end: int) -> bool:
        assert self.edges is not None
        starts_word, ends_word = self.edges
        if start == end:
            return False
        if starts_word and start > 0 and is_word_char(text[start - 1]):
            return False
        return not (ends_word and end < len(text) and is_word_char(text[end]))


class Replacer:
    """Rules compiled once, applied in order: each rule sees the previous one's output."""

    def __init__(self, rules: list[Replacement]) -> None:
        self.rules = list(rules)
        self._compiled = [rule.compile() for rule in rules]

    def apply(self, text: str) -> str:
        text = normalize(text)
        for rule in self._compiled:
            text = rule.apply(text)
        return text

    def phrases(self) -> list[tuple[str, ...]]:
        """The plain rules' heard phrases, for holding back a phrase split across pieces."""
        return [rule.words for rule in self.rules if rule.words]
