"""Live typing as pure decisions: joining committed pieces, and when to type them.

Nothing here touches a keyboard, a thread or the clock; ``tests/unit/keys/test_keys_livetype.py``
replays golden sequences through it.

**Joining** (``join_piece``). whisperd sends a live dictation's text in final pieces with
no spaces at their edges (docs/protocol.md, "Live dictation"). The text typed for a piece:

- the first piece of a dictation is typed as it is;
- a later piece gets one space in front, unless it starts with closing punctuation
  (``. , ; : ! ? % ) ] } …`` and typographic closing quotes), or the text before it ends
  with a space or an opening bracket or typographic quote (a straight quote at the start
  of a piece opens a quotation, so it gets its space);
- after a sentence end (``.``, ``!`` or ``?``, possibly followed by closing quotes or
  brackets; an ellipsis is not an end) the piece's first letter is made upper case;
- a piece is never lower-cased: a capital after a cut in the middle of a sentence may be
  a name or "I", and the text before it is already typed and cannot be changed.

**Typing** (``LiveTypingMachine``). Each piece is typed as soon as it arrives, except
while keys that would change what the typed keys mean are held (Ctrl, Shift, Alt, Super,
the other keys of a chord trigger): then the pieces queue up and are typed when those
keys are released. Typing already under way stops before the next character when such a
key is pressed, and the rest waits with the queue. A cancel drops what is queued; text
already typed stays where it is. After the dictation has ended, queued text waits at
most ``release_wait`` seconds for the keys to be released, then it is dropped.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

SENTENCE_ENDS = frozenset(".!?")
# Characters that close something: no space goes before them.
CLOSING = frozenset(".,;:!?%)]}…»”’")
# Characters that open something: no space goes after them. A straight quote (" or ')
# at the start of a piece opens a quotation: a space goes before it, and the letter after
# it is capitalised after a sentence end.
OPENING = frozenset("([{«“‘")
STRAIGHT_QUOTES = frozenset("\"'")
# How long queued text waits for the user to let go of modifiers once the dictation has
# ended; typing while Ctrl is held would fire shortcuts instead of text.
RELEASE_WAIT_SECONDS = 30.0


def ends_sentence(text: str) -> bool:
    """True when ``text`` ends a sentence: ``.``, ``!`` or ``?`` (not ``...``/``…``),
    possibly followed by closing quotes or brackets."""
    stripped = text.rstrip().rstrip("\"'”’»)]}")
    if not stripped or stripped[-1] not in SENTENCE_ENDS:
        return False
    return not stripped.endswith("...")


def _is_closing(char: str) -> bool:
    return char in CLOSING or unicodedata.category(char) in ("Pe", "Pf")


def _is_opening(char: str) -> bool:
    return char in OPENING or unicodedata.category(char) in ("Ps", "Pi")


def _capitalise(piece: str) -> str:
    """Upper-case the first letter, past any opening quotes or brackets."""
    for index, char in enumerate(piece):
        if char.isalpha():
            return piece[:index] + char.upper() + piece[index + 1 :]
        if not (_is_opening(char) or char in STRAIGHT_QUOTES):
            return piece
    return piece


def join_piece(before: str, piece: str) -> str:
    """The text to type for ``piece`` after ``before`` (what this dictation typed so far,
    or at least its last few characters; "" for the first piece)."""
    piece = piece.strip()
    if not piece or not before:
        return piece
    if ends_sentence(before):
        piece = _capitalise(piece)
    if _is_closing(piece[0]) or before[-1].isspace() or _is_opening(before[-1]):
        return piece
    return " " + piece


def join_pieces(pieces: list[str]) -> str:
    """Every piece joined as whisperd-keys types them."""
    text = ""
    for piece in pieces:
        text += join_piece(text, piece)
    return text


BACKSPACE = "\b"  # in queued text: one tap of the BackSpace key (see Shaped)


def settle_text(queued: str, erase: int) -> str:
    """``erase`` BackSpaces after ``queued`` text not typed yet: the queued characters
    they would delete are dropped, only the rest stay as BackSpaces (the text form of
    ``whisperd.text.settle``; BackSpaces already queued are never taken back)."""
    typable = len(queued) - (queued.rfind(BACKSPACE) + 1)  # the text after the last one
    dropped = min(erase, typable)
    return queued[: len(queued) - dropped] + BACKSPACE * (erase - dropped)


# -- events in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A committed piece of text (or, without live typing, the whole result)."""

    text: str


@dataclass(frozen=True)
class Shaped:
    """Text already shaped by the ``[text]`` rules (``whisperd.text.Shaper``): typed as
    it is, not joined ("\\n" is Enter). ``erase`` BackSpaces go first ("scratch that"):
    characters still queued are dropped instead, only the rest become BackSpaces."""

    text: str
    erase: int = 0


@dataclass(frozen=True)
class KeysHeld:
    """Whether keys that block typing (modifiers, chord keys) are held right now."""

    held: bool
    time: float


@dataclass(frozen=True)
class Typed:
    """The answer to ``TypeText``: how many of its characters went out before typing
    stopped (all of them unless a blocking key was pressed or the dictation cancelled)."""

    consumed: int


@dataclass(frozen=True)
class Cancel:
    time: float


@dataclass(frozen=True)
class Finished:
    """The dictation has ended: no more pieces will come."""

    time: float


@dataclass(frozen=True)
class Tick:
    time: float


Event = Piece | Shaped | KeysHeld | Typed | Cancel | Finished | Tick

# -- actions out -------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeText:
    """Type this now, then feed ``Typed``."""

    text: str


@dataclass(frozen=True)
class Drop:
    """Queued characters that will not be typed, and why ("cancelled", "keys_held")."""

    chars: int
    reason: str


@dataclass(frozen=True)
class Done:
    """Nothing more will be typed for this dictation."""


Action = TypeText | Drop | Done


@dataclass
class LiveTypingMachine:
    release_wait: float = RELEASE_WAIT_SECONDS

    _joined: str = ""  # the tail of everything joined so far (for the joiner)
    _queue: str = ""  # joined text not yet handed out
    _out: str = ""  # the text of the TypeText being typed
    _typing: bool = False
    _blocked: bool = False
    _cancelled: bool = False
    _finished_at: float | None = None
    _done: bool = False
    typed_chars: int = field(default=0)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def waiting_for_keys(self) -> bool:
        return self._blocked and bool(self._queue) and not self._typing

    def feed(self, event: Event) -> list[Action]:
        if self._done:
            return []
        if isinstance(event, Piece):
            return self._piece(event.text)
        if isinstance(event, Shaped):
            return self._shaped(event)
        if isinstance(event, KeysHeld):
            self._blocked = event.held
            return self._next(event.time)
        if isinstance(event, Typed):
            return self._typed(event.consumed)
        if isinstance(event, Cancel):
            return self._cancel()
        if isinstance(event, Finished):
            self._finished_at = event.time
            return self._next(event.time)
        return self._next(event.time)

    def _piece(self, text: str) -> list[Action]:
        if self._cancelled or self._finished_at is not None:
            return []
        joined = join_piece(self._joined, text)
        self._joined = (self._joined + joined)[-16:]
        self._queue += joined
        return self._next(None)

    def _shaped(self, event: Shaped) -> list[Action]:
        if self._cancelled or self._finished_at is not None:
            return []
        self._queue = settle_text(self._queue, event.erase) + event.text
        return self._next(None)

    def _typed(self, consumed: int) -> list[Action]:
        self._typing = False
        consumed = max(0, min(consumed, len(self._out)))
        self.typed_chars += consumed
        rest, self._out = self._out[consumed:], ""
        if rest:
            # The typer stopped early: a blocking key went down (or a cancel, below).
            # Wait for a fresh KeysHeld before typing the rest.
            self._blocked = True
        if self._cancelled:
            dropped = len(rest)
            actions: list[Action] = [Drop(dropped, "cancelled")] if dropped else []
            return actions + self._finish_if_idle()
        self._queue = rest + self._queue  # interrupted by a key: the rest waits first
        return self._next(None)

    def _cancel(self) -> list[Action]:
        if self._cancelled:
            return []
        self._cancelled = True
        dropped, self._queue = len(self._queue), ""
        actions: list[Action] = [Drop(dropped, "cancelled")] if dropped else []
        if self._typing:
            return actions  # Typed comes back with what the typer got out
        return actions + self._finish_if_idle()

    def _next(self, now: float | None) -> list[Action]:
        if self._typing:
            return []
        if self._queue and not self._blocked and not self._cancelled:
            self._out, self._queue = self._queue, ""
            self._typing = True
            return [TypeText(self._out)]
        if (
            self._queue
            and now is not None
            and self._finished_at is not None
            and now - self._finished_at >= self.release_wait
        ):
            dropped, self._queue = len(self._queue), ""
            return [Drop(dropped, "keys_held"), *self._finish_if_idle()]
        if self._finished_at is not None or self._cancelled:
            return self._finish_if_idle()
        return []

    def _finish_if_idle(self) -> list[Action]:
        if self._typing or self._queue or (self._finished_at is None and not self._cancelled):
            return []
        self._done = True
        return [Done()]
