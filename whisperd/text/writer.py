"""The text of one piece, word by word: spacing, spoken punctuation, capitals.

``Layout`` is what the next word needs to know about the text before it; it carries over
from piece to piece (and is what "scratch that" restores). The model's own punctuation
after a word is held (``pending``) until the next word, because a spoken mark right
after it replaces it: "Hello, comma, world" is typed "Hello, world", not "Hello,, world".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from whisperd.text.commands import PUNCTUATION, SENTENCE_END, Command
from whisperd.text.words import Chunk

# Characters that close something: a piece starting with a chunk of only punctuation
# that begins with one (", three" or ")") sticks to the word before it.
CLOSING = frozenset(".,;:!?%)]}…»”’")
CLOSERS_AFTER_END = "\"'”’»)]}"


@dataclass(frozen=True)
class Layout:
    need_space: bool = False  # a word was typed: the next one is separated by a space
    pending: str = ""  # the model's punctuation after the last word, not typed yet
    capitalize: bool = False  # a spoken sentence end or new line: next word capitalised
    word_before: str = ""  # the last word (folded), "" after punctuation or a new line


def piece_start(layout: Layout) -> Layout:
    """The layout a new piece starts from: after the model's own sentence end at the end
    of the previous piece (its held "." "?" "!", not "..."), the piece's first word gets a
    capital, as whisperd-keys' live typing always joined pieces."""
    end = layout.pending.rstrip(CLOSERS_AFTER_END)
    if end[-1:] in SENTENCE_END and not end.endswith("..."):
        return replace(layout, capitalize=True)
    return layout


class Writer:
    """Builds one piece's text from ``layout`` on; ``text`` is what to type ("\\n" is
    the Enter key)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._out: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._out)

    def _emit(self, text: str) -> None:
        if text:
            self._out.append(text)

    def _set(self, **changes: object) -> None:
        self.layout = replace(self.layout, **changes)  # type: ignore[arg-type]

    def word(self, item: Chunk) -> None:
        layout = self.layout
        # A piece starting with closing punctuation (", three") joins the word before.
        closing = not self._out and not item.core and item.lead[:1] in CLOSING
        self._emit(layout.pending)
        if layout.need_space and not closing:
            self._emit(" ")
        core = item.core
        if layout.capitalize and core:
            core = core[0].upper() + core[1:]
        self._emit(item.lead + core)
        self._set(
            pending=item.trail,
            need_space=True,
            capitalize=layout.capitalize and not core,
            word_before="" if item.trail or not core else item.key,
        )

    def command(self, command: Command) -> None:
        if command in PUNCTUATION:
            self._mark(PUNCTUATION[command])
        elif command is Command.NEW_LINE:
            self._enter(1)
        elif command is Command.NEW_PARAGRAPH:
            self._enter(2)
        elif command is Command.OPEN_QUOTE:
            self._emit(self.layout.pending)
            if self.layout.need_space:
                self._emit(" ")
            self._emit('"')
            self._set(pending="", need_space=False, word_before="")
        elif command is Command.CLOSE_QUOTE:
            self._emit(self.layout.pending)
            self._emit('"')
            self._set(pending="", need_space=True, word_before="")
        else:
            raise ValueError(f"{command} is not a writing command")

    def _mark(self, mark: str) -> None:
        # The model's guess at this spot ("Hello," before "comma") gives way to what
        # was said.
        self._emit(mark)
        self._set(pending="", need_space=True, capitalize=mark in SENTENCE_END, word_before="")

    def _enter(self, count: int) -> None:
        # A comma the model put before a spoken new line is its guess at the pause;
        # a full stop or question mark stays.
        self._emit(self.layout.pending.rstrip(",;:"))
        self._emit("\n" * count)
        self._set(pending="", need_space=False, capitalize=True, word_before="")

    def flush(self) -> None:
        """The end of a dictation: type the held punctuation."""
        self._emit(self.layout.pending)
        self._set(pending="")
