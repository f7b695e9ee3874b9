"""Spoken punctuation and commands: which phrases, and when a phrase is a command.

The rule for words that are also speech (docs/text.md): a command phrase is a command
unless the word said right before it, with no punctuation between, is one of
``literal_after`` — words after which a noun comes ("a", "the", "this", "my", ...). So
"bye period" types "bye." while "a period of time" and "the colon" stay words, and
"a new line of products" stays text while "first item new line" presses Enter. The word
before may be in the previous piece; a phrase split over two pieces ("new" | "line") is
held back until the next piece says whether it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from whisperd.text.words import Chunk, fold, phrase_key


class Command(Enum):
    NEW_LINE = "new_line"
    NEW_PARAGRAPH = "new_paragraph"
    PERIOD = "period"
    COMMA = "comma"
    QUESTION_MARK = "question_mark"
    EXCLAMATION_MARK = "exclamation_mark"
    COLON = "colon"
    SEMICOLON = "semicolon"
    OPEN_QUOTE = "open_quote"
    CLOSE_QUOTE = "close_quote"
    SCRATCH_THAT = "scratch_that"


PUNCTUATION: dict[Command, str] = {
    Command.PERIOD: ".",
    Command.COMMA: ",",
    Command.QUESTION_MARK: "?",
    Command.EXCLAMATION_MARK: "!",
    Command.COLON: ":",
    Command.SEMICOLON: ";",
}
SENTENCE_END = frozenset(".?!")

# English defaults; [text.commands] in config.toml replaces a command's list, so another
# language is a matter of adding its words ("punkt", "neue Zeile", ...).
DEFAULT_PHRASES: dict[str, list[str]] = {
    Command.NEW_LINE.value: ["new line"],
    Command.NEW_PARAGRAPH.value: ["new paragraph"],
    Command.PERIOD.value: ["period", "full stop"],
    Command.COMMA.value: ["comma"],
    Command.QUESTION_MARK.value: ["question mark"],
    Command.EXCLAMATION_MARK.value: ["exclamation mark", "exclamation point"],
    Command.COLON.value: ["colon"],
    Command.SEMICOLON.value: ["semicolon"],
    Command.OPEN_QUOTE.value: ["open quote"],
    Command.CLOSE_QUOTE.value: ["close quote"],
    Command.SCRATCH_THAT.value: ["scratch that"],
}

# Articles, demonstratives and possessives: a noun follows them. Not pronouns that end
# sentences ("do that period" is "do that."), nor numbers ("item one new line").
DEFAULT_LITERAL_AFTER: list[str] = (
    "a an the this these those each every another my your his her its our their whose"
).split()


@dataclass(frozen=True)
class Match:
    command: Command
    length: int  # chunks the phrase covers


class CommandTable:
    """Phrases to commands; matches the longest phrase at a position."""

    def __init__(
        self, phrases: dict[str, list[str]] | None = None, literal_after: list[str] | None = None
    ) -> None:
        merged = {**DEFAULT_PHRASES, **(phrases or {})}
        self.by_key: dict[tuple[str, ...], Command] = {}
        self.spoken: list[str] = []
        for name, spoken in merged.items():
            command = Command(name)
            for phrase in spoken:
                key = phrase_key(phrase)
                if key:
                    self.by_key[key] = command
                    self.spoken.append(" ".join(phrase.split()))
        self.literal_after = frozenset(
            fold(word)
            for word in (DEFAULT_LITERAL_AFTER if literal_after is None else literal_after)
        )
        self.longest = max((len(k) for k in self.by_key), default=0)

    def phrases(self) -> list[tuple[str, ...]]:
        return list(self.by_key)

    def match(self, items: list[Chunk], at: int, word_before: str) -> Match | None:
        """The command starting at ``items[at]``, if one does and the word before it
        (folded; "" after punctuation or at the start) does not make it speech."""
        if word_before and word_before in self.literal_after:
            return None
        for length in range(min(self.longest, len(items) - at), 0, -1):
            span = items[at : at + length]
            # The model's punctuation may surround a command ("Hello, comma, world")
            # but not split it: "new. Line" is two sentences, not a command.
            if any(c.trail for c in span[:-1]) or any(c.lead for c in span[1:]):
                continue
            command = self.by_key.get(tuple(c.key for c in span))
            if command is not None:
                return Match(command, length)
        return None
