"""Golden cases of the Shaper: spoken punctuation, the command/speech rule, pieces,
"scratch that", and the actions a typist gets."""

from __future__ import annotations

import pytest

from whisperd.text import (
    Erase,
    Key,
    Shaper,
    TextRules,
    Type,
    apply_actions,
    settle,
    shape_pieces,
    shape_text,
)
from whisperd.text.replacements import Replacement
from whisperd.text.shaper import MAX_HISTORY

SPOKEN = TextRules.build(spoken_punctuation=True)
OFF = TextRules.build()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the integration test's sentence, with the punctuation the model may add
        ("hello comma world new line bye period", "hello, world\nBye."),
        ("Hello, comma, world, new line, bye period.", "Hello, world\nBye."),
        ("Hello comma world. New line. Bye. Period.", "Hello, world.\nBye."),
        ("Hello, comma world new paragraph bye full stop", "Hello, world\n\nBye."),
        ("are you there question mark yes exclamation mark", "are you there? Yes!"),
        ("are you there question mark. Yes.", "are you there? Yes."),
        ("dear John colon thanks", "dear John: thanks"),
        ("one semicolon two", "one; two"),
        ("He said open quote hi close quote and left period", 'He said "hi" and left.'),
        ("open quote hi close quote", '"hi"'),
        ("Exclamation point.", "!"),
        ("PERIOD", "."),
        ("comma comma", ",,"),
        ("new line new line", "\n\n"),
        # words that are also speech: after "a", "the", "this", ... they stay words
        ("It took a period of time.", "It took a period of time."),
        ("the colon is an organ", "the colon is an organ"),
        ("a new line of products", "a new line of products"),
        ("put a question mark here", "put a question mark here"),
        ("my new paragraph", "my new paragraph"),
        ("a scratch that won't heal", "a scratch that won't heal"),
        # ... but not when the model's punctuation stands between
        ("the, period", "the."),
        ("do that period", "do that."),
        ("item one new line item two", "item one\nItem two"),
        ("bye period", "bye."),
        # a command split by the model's punctuation is two sentences, not a command
        ("something new. Line up!", "something new. Line up!"),
        # command words inside other words are not commands
        ("periodic commas colonel newline", "periodic commas colonel newline"),
        # scratch that: the text before it in the same piece goes
        ("I like cats scratch that dogs", "dogs"),
        ("scratch that", ""),
        ("one scratch that two scratch that three", "three"),
        # empty and blank
        ("", ""),
        ("   ", ""),
    ],
)
def test_spoken_punctuation_golden(text: str, expected: str) -> None:
    assert shape_text(text, SPOKEN) == expected


def test_off_by_default_words_stay_words() -> None:
    text = "hello comma world new line bye period scratch that"
    assert shape_text(text, OFF) == text
    assert not OFF.active and SPOKEN.active


def test_whitespace_is_normalised_and_model_punctuation_kept() -> None:
    assert shape_text("  Hello,   world.  How are you?  ", OFF) == "Hello, world. How are you?"


def test_other_languages_through_the_word_lists() -> None:
    german = TextRules.build(
        spoken_punctuation=True,
        commands={"period": ["punkt"], "new_line": ["neue Zeile"], "comma": ["komma"]},
        literal_after=["der", "die", "das", "ein", "eine"],
    )
    assert shape_text("Hallo komma Welt neue Zeile tschüss Punkt", german) == (
        "Hallo, Welt\nTschüss."
    )
    assert shape_text("der Punkt ist klar", german) == "der Punkt ist klar"
    # a command's list is replaced: "period" is no longer one, "full stop" is unchanged
    assert shape_text("bye period", german) == "bye period"
    # Cyrillic commands
    russian = TextRules.build(spoken_punctuation=True, commands={"comma": ["запятая"]})
    assert shape_text("привет Запятая мир", russian) == "привет, мир"


def test_replacements_run_before_commands() -> None:
    rules = TextRules.build([Replacement("new lime", "new line")], spoken_punctuation=True)
    assert shape_text("one new lime two", rules) == "one\nTwo"


def feed_all(shaper: Shaper, pieces: list[tuple[str, bool]]) -> list[list[object]]:
    return [list(shaper.feed(piece, final)) for piece, final in pieces]


def test_actions_include_the_enter_key() -> None:
    actions = Shaper(SPOKEN).feed("hello comma world new line bye period", final=True)
    assert actions == [Type("hello, world"), Key("Enter"), Type("Bye.")]


def test_a_phrase_split_over_two_pieces() -> None:
    shaper = Shaper(SPOKEN)
    assert feed_all(shaper, [("first item new", False), ("line second item", True)]) == [
        [Type("first item")],
        [Key("Enter"), Type("Second item")],
    ]
    # the same words as speech: "a new" | "line of products"
    shaper = Shaper(SPOKEN)
    steps = feed_all(shaper, [("we sell a new", False), ("line of products", True)])
    assert steps == [[Type("we sell a")], [Type(" new line of products")]]


def test_the_word_before_may_be_in_the_previous_piece() -> None:
    shaper = Shaper(SPOKEN)
    assert feed_all(shaper, [("it took a", False), ("period of time", True)]) == [
        [Type("it took a")],
        [Type(" period of time")],
    ]


def test_a_replacement_split_over_two_pieces() -> None:
    rules = TextRules.build([Replacement("comfy eye", "ComfyUI")])
    shaper = Shaper(rules)
    assert feed_all(shaper, [("open the comfy", False), ("eye folder", True)]) == [
        [Type("open the")],
        [Type(" ComfyUI folder")],
    ]


def test_held_words_are_typed_at_the_end_of_the_dictation() -> None:
    shaper = Shaper(SPOKEN)
    assert feed_all(shaper, [("something new", False), ("", True)]) == [
        [Type("something")],
        [Type(" new")],
    ]


def test_model_punctuation_waits_for_the_next_piece() -> None:
    shaper = Shaper(SPOKEN)
    assert feed_all(shaper, [("Hello,", False), ("comma world.", False), ("", True)]) == [
        [Type("Hello")],
        [Type(", world")],
        [Type(".")],
    ]
    shaper = Shaper(SPOKEN)
    assert feed_all(shaper, [("Hello,", False), ("world.", True)]) == [
        [Type("Hello")],
        [Type(", world.")],
    ]


def test_pieces_are_joined_by_one_space_and_dictations_start_without_one() -> None:
    shaper = Shaper(OFF)
    assert feed_all(shaper, [(" Hello", False), (" there.", True), (" Again.", True)]) == [
        [Type("Hello")],
        [Type(" there.")],
        [Type("Again.")],
    ]


def test_scratch_that_erases_the_previous_piece() -> None:
    shaper = Shaper(SPOKEN)
    steps = feed_all(
        shaper,
        [("Dear Bob,", False), ("thanks a lot.", False), ("scratch that see you", True)],
    )
    assert steps == [
        [Type("Dear Bob")],
        [Type(", thanks a lot")],
        [Erase(len(", thanks a lot")), Type(", see you")],
    ]
    typed = ""
    for step in steps:
        typed = apply_actions(typed, step)  # type: ignore[arg-type]
    assert typed == "Dear Bob, see you"


def test_scratch_that_counts_the_enter_key_and_goes_back_several_pieces() -> None:
    shaper = Shaper(SPOKEN)
    first = shaper.feed("one new line", True)
    second = shaper.feed("two", True)
    assert first == [Type("one"), Key("Enter")]
    assert second == [Type("Two")]
    assert shaper.feed("scratch that", True) == [Erase(3)]
    assert shaper.feed("scratch that", True) == [Erase(4)]
    assert shaper.feed("scratch that", True) == []  # nothing left to erase
    assert shaper.feed("three", True) == [Type("three")]


def test_scratch_that_in_a_later_dictation_continues_the_earlier_text() -> None:
    shaper = Shaper(SPOKEN)
    assert shaper.feed("Hello there.", True) == [Type("Hello there.")]
    assert shaper.feed("General Kenobi.", True) == [Type("General Kenobi.")]
    # scratch the second dictation: the text continues after "Hello there."
    assert shaper.feed("scratch that", True) == [Erase(15)]


def test_forget_stops_erasing() -> None:
    shaper = Shaper(SPOKEN)
    shaper.feed("typed earlier", True)
    shaper.forget()
    assert shaper.feed("scratch that", True) == []


def test_history_is_bounded() -> None:
    shaper = Shaper(SPOKEN)
    for index in range(MAX_HISTORY + 5):
        shaper.feed(f"w{index}", True)
    erased = [shaper.feed("scratch that", True) for _ in range(MAX_HISTORY + 5)]
    assert sum(1 for e in erased if e) == MAX_HISTORY


def test_post_hook_sees_each_piece_and_its_length_is_what_scratch_erases() -> None:
    seen: list[str] = []

    def post(text: str) -> str:
        seen.append(text)
        return text.upper()

    shaper = Shaper(SPOKEN, post)
    assert shaper.feed("hello comma world", False) == [Type("HELLO, WORLD")]
    assert shaper.feed("scratch that", True) == [Erase(12)]
    assert seen == ["hello, world"]


def test_settle_drops_what_was_never_typed() -> None:
    queued = [Type("Dear Bob"), Type(", thanks")]
    assert settle(queued, [Erase(8), Type(", see you")]) == [Type("Dear Bob"), Type(", see you")]
    assert settle(queued, [Erase(10)]) == [Type("Dear B")]
    assert settle(queued, [Erase(20)]) == [Erase(4)]
    assert settle([Type("a"), Key("Enter")], [Erase(1)]) == [Type("a")]
    assert settle([], [Erase(3), Type("x")]) == [Erase(3), Type("x")]
    assert settle([Type("abc")], [Type("d")]) == [Type("abc"), Type("d")]


def test_shape_pieces_matches_feeding_by_hand() -> None:
    pieces = ["Hello, comma", "world new", "line bye period.", "scratch that ok"]
    # the third piece typed Enter and "Bye" (its "." was still held): all of it goes
    assert shape_pieces(pieces, SPOKEN) == "Hello, world ok"
    assert shape_pieces([], SPOKEN) == ""


def test_unicode_and_very_long_texts() -> None:
    text = "Привет запятая мир, café crème. " * 2000
    out = shape_text(text, SPOKEN)
    assert out.count("café crème.") == 2000
    long_dictation = " ".join(["word"] * 50000 + ["period"])
    assert shape_text(long_dictation, SPOKEN).endswith("word word.")


def test_scratch_that_after_held_words_takes_back_their_whole_piece() -> None:
    shaper = Shaper(SPOKEN)
    assert shaper.feed("I want a new", False) == [Type("I want a")]  # "new" held
    # "new" was said in the previous piece: that whole piece goes
    assert shaper.feed("scratch that ok", True) == [Erase(len("I want a")), Type("ok")]
    shaper = Shaper(SPOKEN)
    shaper.feed("first.", False)
    assert shaper.feed("I want a new", False) == [Type(". I want a")]
    # words said in this piece before it: only they go (the held "new" with them)
    assert shaper.feed("thing scratch that ok", True) == [Type(" ok")]


@pytest.mark.parametrize(
    ("pieces", "typed"),
    [
        # as whisperd-keys joins pieces without rules (whisperd/keys/livetype.py)
        (
            ["First piece.", "second one,", "and the last."],
            "First piece. Second one, and the last.",
        ),
        (["Is it?", "yes."], "Is it? Yes."),
        (["I think...", "maybe not"], "I think... maybe not"),
        (["one, two", ", three"], "one, two, three"),
        (["wait", "?"], "wait?"),
        (["a list (first", ") and then"], "a list (first) and then"),
        (["e.g.", "this"], "e.g. This"),  # the joiner's rule too: a piece end is a guess
    ],
)
def test_pieces_are_joined_as_live_typing_joins_them(pieces: list[str], typed: str) -> None:
    assert shape_pieces(pieces, OFF) == typed
    assert shape_pieces(pieces, SPOKEN) == typed


def test_a_sentence_end_inside_a_piece_is_the_models_own() -> None:
    assert shape_text("see e.g. this", OFF) == "see e.g. this"


def test_post_hook_sees_the_pieces_own_words_not_the_join() -> None:
    seen: list[str] = []

    def post(text: str) -> str:
        seen.append(text)
        return text.strip().upper()  # a hook that trims, as an LLM cleanup would

    shaper = Shaper(SPOKEN, post)
    typed = [shaper.feed(p, f) for p, f in [("one two.", False), ("three", False), ("four", True)]]
    # the previous piece's held "." and the joining space are typed around the hook
    assert seen == ["one two", "Three", "four"]
    assert typed == [[Type("ONE TWO")], [Type(". THREE")], [Type(" FOUR")]]
