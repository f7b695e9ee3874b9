"""The text rules for live dictation: committed pieces in, keyboard actions out.

``Shaper.feed(piece, final)`` takes each piece of text the daemon commits, in order, and
returns what to type: ``Type(text)``, ``Key("Enter")`` and ``Erase(chars)`` (that many
BackSpaces). It is pure (no I/O, no clock; the optional ``post`` hook is the caller's
function), so every behaviour is a golden test (tests/unit/text/test_shaper.py).

Across pieces (docs/text.md):
- a phrase split over two pieces ("new" | "line", "comfy" | "eye") is held back: the
  trailing words that begin a command or replacement phrase are not typed until the next
  piece (or the end of the dictation, ``final=True``) shows whether the phrase is whole;
- the model's punctuation after a piece's last word waits for the next piece too, so a
  spoken "comma" starting the next piece replaces it instead of doubling it;
- "scratch that" removes the text typed for the current piece before it; at the start of
  a piece it removes the previous piece: ``Erase(n)`` for the n characters typed for it
  (the Enter key counts one). A consumer that has not typed those yet drops them from
  its queue instead (``settle``). Up to ``MAX_HISTORY`` pieces back, across dictations
  until ``forget()`` (call it when the user types or clicks elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from whisperd.text.commands import Command
from whisperd.text.rules import TextRules
from whisperd.text.words import chunk, chunks, fold
from whisperd.text.writer import Layout, Writer, piece_start

MAX_HISTORY = 20
# What a piece's text may start with before its own words: the previous piece's held
# mark, the joining space, Enter.
JOINING = " \n.,;:!?"
ENTER = "Enter"


@dataclass(frozen=True)
class Type:
    text: str


@dataclass(frozen=True)
class Erase:
    chars: int


@dataclass(frozen=True)
class Key:
    name: str


Action = Type | Erase | Key


@dataclass(frozen=True)
class Typed:
    """One piece in the history: characters typed for it and the layout before it."""

    chars: int
    before: Layout


class Shaper:
    def __init__(self, rules: TextRules, post: Callable[[str], str] | None = None) -> None:
        self.rules = rules
        self.post = post
        self._held = ""
        self._layout = Layout()
        self._history: list[Typed] = []
        self._prefixes = _proper_prefixes(rules)

    def forget(self) -> None:
        """Nothing typed so far may be erased any more (the cursor may have moved)."""
        self._history.clear()

    def feed(self, piece: str, final: bool) -> list[Action]:
        """The actions for one committed piece; ``final`` ends the dictation (all held
        text is typed, the next dictation starts without a leading space)."""
        carried = len(self._held.split())  # words held back from the previous piece
        text = f"{self._held} {piece}".strip() if self._held else piece
        self._held = ""
        if not final:
            text, self._held = self._hold_back(text)
        erase, typed, start, layout = self._write(self.rules.replacer.apply(text), final, carried)
        if typed and self.post is not None:
            typed = post_around_join(typed, self.post)
        if typed:
            self._history.append(Typed(len(typed), start))
            del self._history[:-MAX_HISTORY]
        # A new dictation starts without a space (as whisperd-keys always typed), but
        # a spoken sentence end or new line before it still capitalises its first word.
        self._layout = Layout(capitalize=layout.capitalize) if final else layout
        return ([Erase(erase)] if erase else []) + to_actions(typed)

    def _write(self, text: str, final: bool, carried: int) -> tuple[int, str, Layout, Layout]:
        """(characters to erase first, text to type, layout before it, layout after).

        The first ``carried`` words were said in the previous piece: a "scratch that"
        right after them takes that piece back, not just them."""
        items = chunks(text)
        table = self.rules.commands
        start = self._layout
        writer = Writer(piece_start(start))
        erase = 0
        at = 0
        while at < len(items):
            match = table.match(items, at, writer.layout.word_before) if table else None
            if match is None:
                writer.word(items[at])
                at += 1
                continue
            said_at, at = at, at + match.length
            if match.command is not Command.SCRATCH_THAT:
                writer.command(match.command)
            elif writer.text and said_at > carried:
                writer = Writer(piece_start(start))  # this piece's text so far: never typed
            elif self._history:
                previous = self._history.pop()
                erase += previous.chars
                start = previous.before
                writer = Writer(piece_start(start))
                carried = 0
            else:
                writer = Writer(piece_start(start))
        if final:
            writer.flush()
        return erase, writer.text, start, writer.layout

    def _hold_back(self, text: str) -> tuple[str, str]:
        """Split ``text`` into what can be shaped now and its last words that begin a
        phrase (a command or a replacement) the next piece may complete."""
        parts = text.split()
        for count in range(min(len(parts), self._longest_prefix()), 0, -1):
            tail = parts[-count:]
            cores = tuple(chunk(p).key for p in tail)
            whole = tuple(fold(p) for p in tail)
            if cores in self._prefixes or whole in self._prefixes:
                return " ".join(parts[:-count]), " ".join(tail)
        return text, ""

    def _longest_prefix(self) -> int:
        return max((len(p) for p in self._prefixes), default=0)


def _proper_prefixes(rules: TextRules) -> frozenset[tuple[str, ...]]:
    phrases = [tuple(fold(w) for w in words) for words in rules.replacer.phrases()]
    if rules.commands is not None:
        phrases += rules.commands.phrases()
    return frozenset(p[:n] for p in phrases for n in range(1, len(p)))


def post_around_join(typed: str, post: Callable[[str], str]) -> str:
    """The hook on the piece's own text: the previous piece's held mark, the joining
    space and Enter before it are typed around it (a hook that trims its input would
    otherwise glue pieces together)."""
    body = typed.lstrip(JOINING)
    if not body:
        return typed
    return typed[: len(typed) - len(body)] + post(body)


def to_actions(text: str) -> list[Action]:
    """Text with "\\n" for Enter as actions."""
    actions: list[Action] = []
    for index, line in enumerate(text.split("\n")):
        if index:
            actions.append(Key(ENTER))
        if line:
            actions.append(Type(line))
    return actions


def settle(queued: Sequence[Action], new: Sequence[Action]) -> list[Action]:
    """Append ``new`` to the actions still waiting to be typed, an ``Erase`` first taking
    its characters off the waiting text: what was never typed is dropped, only the rest
    becomes BackSpaces."""
    out = list(queued)
    for action in new:
        if not isinstance(action, Erase):
            out.append(action)
            continue
        left = action.chars
        while left and out and not isinstance(out[-1], Erase):
            last = out.pop()
            if isinstance(last, Type) and len(last.text) > left:
                out.append(Type(last.text[: len(last.text) - left]))
                left = 0
            else:
                left -= len(last.text) if isinstance(last, Type) else 1
        if left:
            out.append(Erase(left))
    return out


def apply_actions(text: str, actions: Sequence[Action]) -> str:
    """What a text field holds after ``actions`` (Enter is "\\n", Erase a BackSpace)."""
    for action in actions:
        if isinstance(action, Type):
            text += action.text
        elif isinstance(action, Key):
            text += "\n" if action.name == ENTER else ""
        else:
            text = text[: max(0, len(text) - action.chars)]
    return text


def shape_pieces(pieces: Sequence[str], rules: TextRules) -> str:
    """Pieces of one dictation (a file's segments) shaped into the final text."""
    shaper = Shaper(rules)
    text = ""
    for index, piece in enumerate(pieces):
        text = apply_actions(text, shaper.feed(piece, final=index == len(pieces) - 1))
    return text


def shape_text(text: str, rules: TextRules) -> str:
    """A whole text shaped as one piece."""
    return shape_pieces([text], rules)
