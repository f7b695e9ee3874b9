"""Golden cases of live typing: the joiner, and the decisions of LiveTypingMachine."""

from __future__ import annotations

import pytest

from whisperd.keys.livetype import (
    Action,
    Cancel,
    Done,
    Drop,
    Event,
    Finished,
    KeysHeld,
    LiveTypingMachine,
    Piece,
    Shaped,
    Tick,
    Typed,
    TypeText,
    ends_sentence,
    join_piece,
    join_pieces,
    settle_text,
)

# (text typed so far, piece, what is typed for the piece)
JOINS = [
    ("", "Please send the report.", "Please send the report."),
    ("", "  padded  ", "padded"),
    ("", "lower case first piece", "lower case first piece"),  # the first piece as is
    ("Send it.", "The meeting is on Monday.", " The meeting is on Monday."),
    ("Send it.", "then call me.", " Then call me."),  # after a sentence end: capital
    ("Is it?", "yes.", " Yes."),
    ("Stop!", "now", " Now"),
    ('He said "go."', "and left", " And left"),  # end inside closing quotes
    ("I went to the", "store and back.", " store and back."),
    ("I went to the", "London office", " London office"),  # never lower-cased
    ("I think...", "maybe not", " maybe not"),  # an ellipsis is no sentence end
    ("I think…", "maybe not", " maybe not"),
    ("one, two", ", three", ", three"),  # closing punctuation: no space
    ("one two", ".", "."),
    ("wait", "?", "?"),
    ("costs 5", "% more", "% more"),
    ("a list (first", ") and then", ") and then"),
    ("the word", "” ends it", "” ends it"),
    ("open (", "bracket", "bracket"),  # after an opening bracket: no space
    ("trailing space ", "next", "next"),
    ("Done.", '"quoted" start', ' "Quoted" start'),  # capital past an opening quote
    ("Done.", "42 items", " 42 items"),
    ("Done.", "", ""),  # an empty final piece types nothing
    ("Done.", "   ", ""),
]


@pytest.mark.parametrize(("before", "piece", "typed"), JOINS)
def test_join_piece(before: str, piece: str, typed: str) -> None:
    assert join_piece(before, piece) == typed


def test_join_pieces_of_a_dictation() -> None:
    pieces = ["Please send the report.", "the meeting is on Monday", ", at ten.", ""]
    assert join_pieces(pieces) == "Please send the report. The meeting is on Monday, at ten."


def test_joined_pieces_equal_the_daemon_result_for_ordinary_pieces() -> None:
    # whisperd's result is the pieces joined by single spaces: for pieces that start
    # like ordinary words after a sentence end, typing them gives exactly that text.
    pieces = ["And so, my fellow Americans.", "Ask not what your country can do for you.", "Ask."]
    assert join_pieces(pieces) == " ".join(pieces)


@pytest.mark.parametrize(
    ("text", "ends"),
    [("a.", True), ("a?", True), ("a!", True), ('a."', True), ("a.)", True), ("a", False),
     ("a,", False), ("a...", False), ("", False), ("a. ", True)],
)  # fmt: skip
def test_ends_sentence(text: str, ends: bool) -> None:
    assert ends_sentence(text) is ends


def play(script: list[Event], machine: LiveTypingMachine | None = None) -> list[Action]:
    """Feed events; a TypeText is answered with Typed(all) unless the script says how
    much went out by putting a Typed right after it."""
    machine = machine or LiveTypingMachine(release_wait=30)
    actions: list[Action] = []
    pending: list[Action] = []
    events = list(script)
    while events or pending:
        if pending:
            action = pending.pop(0)
            actions.append(action)
            if isinstance(action, TypeText):
                if events and isinstance(events[0], Typed):
                    pending += machine.feed(events.pop(0))
                else:
                    pending += machine.feed(Typed(len(action.text)))
            continue
        pending += machine.feed(events.pop(0))
    return actions


GOLDEN: dict[str, tuple[list[Event], list[Action]]] = {
    "pieces typed as they come, joined": (
        [Piece("Send the report."), Piece("then call."), Finished(5.0)],
        [TypeText("Send the report."), TypeText(" Then call."), Done()],
    ),
    "type-at-release: one piece after the end is typed": (
        [KeysHeld(False, 0.0), Piece("Hello world."), Finished(1.0)],
        [TypeText("Hello world."), Done()],
    ),
    "empty final piece: nothing to type": (
        [Piece("One."), Piece(""), Finished(2.0)],
        [TypeText("One."), Done()],
    ),
    "shift held: pieces queue, typed together on release": (
        [
            KeysHeld(True, 1.0),
            Piece("One."),
            Piece("two."),
            Tick(2.0),
            KeysHeld(False, 2.5),
            Finished(3.0),
        ],
        [TypeText("One. Two."), Done()],
    ),
    "a modifier pressed mid-piece: the rest waits for its release": (
        [Piece("abcdef"), Typed(2), KeysHeld(True, 1.0), Tick(1.5), KeysHeld(False, 2.0)],
        [TypeText("abcdef"), TypeText("cdef")],
    ),
    "interrupted rest is typed before a newer piece": (
        [Piece("abc."), Typed(1), Piece("next"), KeysHeld(False, 1.0), Finished(2.0)],
        [TypeText("abc."), TypeText("bc. Next"), Done()],
    ),
    "cancel drops the queue; what was typed stays": (
        [Piece("Typed."), KeysHeld(True, 1.0), Piece("queued"), Cancel(2.0), Piece("late")],
        [TypeText("Typed."), Drop(7, "cancelled"), Done()],
    ),
    "cancel while typing: the typer stops, the rest is dropped": (
        [Piece("abcdef"), Typed(3), Cancel(1.0)],
        [TypeText("abcdef"), Drop(3, "cancelled"), Done()],
    ),
    "modifiers held after the end: dropped after the wait": (
        [KeysHeld(True, 0.0), Piece("text"), Finished(1.0), Tick(20.0), Tick(31.0)],
        [Drop(4, "keys_held"), Done()],
    ),
    "during the hold, held modifiers are waited for as long as it takes": (
        [KeysHeld(True, 0.0), Piece("text"), Tick(500.0), KeysHeld(False, 501.0)],
        [TypeText("text")],
    ),
    "nothing at all: done at the end": (
        [Tick(1.0), Finished(2.0)],
        [Done()],
    ),
    "pieces after the end or after done are ignored": (
        [Finished(1.0), Piece("late")],
        [Done()],
    ),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden(name: str) -> None:
    script, expected = GOLDEN[name]
    assert play(script) == expected


def test_cancel_while_typing_waits_for_typed() -> None:
    machine = LiveTypingMachine()
    assert machine.feed(Piece("abc")) == [TypeText("abc")]
    assert machine.feed(Cancel(1.0)) == []  # the typer sees the cancel event itself
    assert machine.feed(Typed(1)) == [Drop(2, "cancelled"), Done()]
    assert machine.typed_chars == 1 and machine.done


def test_waiting_for_keys_only_with_text_queued() -> None:
    machine = LiveTypingMachine()
    machine.feed(KeysHeld(True, 0.0))
    assert not machine.waiting_for_keys
    machine.feed(Piece("x"))
    assert machine.waiting_for_keys


SHAPED: dict[str, tuple[list[Event], list[Action]]] = {
    "shaped text is typed as it is, not joined": (
        [Shaped("hello,"), Shaped(" world\nBye."), Finished(1.0)],
        [TypeText("hello,"), TypeText(" world\nBye."), Done()],
    ),
    "scratch that of typed text: BackSpaces": (
        [Shaped("wrong"), Shaped("right", erase=5), Finished(1.0)],
        [TypeText("wrong"), TypeText("\b\b\b\b\bright"), Done()],
    ),
    "scratch that of queued text: dropped, never typed": (
        [KeysHeld(True, 0.0), Shaped("keep"), Shaped(" wrong"), Shaped(" right", erase=6),
         KeysHeld(False, 1.0), Finished(2.0)],
        [TypeText("keep right"), Done()],
    ),
    "scratch that reaching past the queue: the rest are BackSpaces": (
        [Shaped("typed"), Typed(5), KeysHeld(True, 1.0), Shaped(" new"), Shaped("x", erase=9),
         KeysHeld(False, 2.0)],
        [TypeText("typed"), TypeText("\b\b\b\b\bx")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SHAPED))
def test_shaped_golden(name: str) -> None:
    script, expected = SHAPED[name]
    assert play(script) == expected


@pytest.mark.parametrize(
    ("queued", "erase", "left"),
    [("abc", 2, "a"), ("abc", 5, "\b\b"), ("a\bbc", 3, "a\b\b"), ("", 1, "\b"), ("ab", 0, "ab")],
)
def test_settle_text(queued: str, erase: int, left: str) -> None:
    assert settle_text(queued, erase) == left
