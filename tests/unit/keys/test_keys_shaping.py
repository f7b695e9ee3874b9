"""whisperd-keys with the [text] rules: live pieces shaped by the one Shaper of
whisperd.text and typed on the recording keyboard (Enter and BackSpace included), the
vocabulary sent with every stream, type-at-release shaping the whole result."""

from __future__ import annotations

import pytest
from evdev import ecodes

from tests.unit.keys.keys_fakes import FakeClient
from tests.unit.keys.test_keys_service import ONE_SECOND, Harness
from whisperd.config import TextConfig

SPOKEN = TextConfig(spoken_punctuation=True)
COMFY = TextConfig(replacements=[{"heard": "comfy eye", "written": "ComfyUI"}])


def dictate(h: Harness, at: float = 0.0) -> None:
    h.key(ecodes.KEY_INSERT, 1, at)
    h.key(ecodes.KEY_INSERT, 0, at + 2.0)
    h.finish_sessions()


def backspaced(text: str) -> str:
    """What an editor shows after the decoded keys (BackSpace reads as "\\b")."""
    out: list[str] = []
    for char in text:
        if char == "\b":
            if out:
                out.pop()
        else:
            out.append(char)
    return "".join(out)


@pytest.mark.parametrize("live", [True, False], ids=["live", "at-release"])
def test_spoken_punctuation_over_pieces_types_marks_and_enter(live: bool) -> None:
    client = FakeClient(pieces=["hello comma", "world new line bye period"], final="")
    h = Harness(client, live=live, text=SPOKEN)
    dictate(h)
    # after a spoken new line the next word starts with a capital (docs/text.md)
    assert h.typed_text() == "hello, world\nBye."
    assert (ecodes.KEY_ENTER, 1) in h.keyboard.events
    assert h.keyboard.held() == frozenset()


@pytest.mark.parametrize("live", [True, False], ids=["live", "at-release"])
def test_a_replacement_across_the_piece_boundary(live: bool) -> None:
    h = Harness(
        FakeClient(pieces=["open comfy", "eye now"], final="please."), live=live, text=COMFY
    )
    dictate(h)
    assert h.typed_text() == "open ComfyUI now please."


def test_a_phrase_held_at_the_end_is_typed_by_the_final_piece() -> None:
    # "new" could begin "new line": held back, and typed when the dictation ends.
    h = Harness(FakeClient(pieces=["something new"], final=""), live=True, text=SPOKEN)
    dictate(h)
    assert h.typed_text() == "something new"


def test_scratch_that_erases_the_typed_previous_dictation_with_backspaces() -> None:
    h = Harness(FakeClient("wrong words"), live=True, text=SPOKEN)
    dictate(h)
    assert h.typed_text() == "wrong words"
    h.client = FakeClient(pieces=["scratch that"], final="right words")
    dictate(h, at=5.0)
    assert h.keyboard.events.count((ecodes.KEY_BACKSPACE, 1)) == len("wrong words")
    assert backspaced(h.typed_text()) == "right words"


def test_scratch_that_erases_nothing_after_the_user_typed() -> None:
    h = Harness(FakeClient("wrong words"), live=True, text=SPOKEN)
    dictate(h)
    h.key(ecodes.KEY_END, 1, 3.0)  # the cursor may be anywhere now
    h.key(ecodes.KEY_END, 0, 3.1)
    h.client = FakeClient(pieces=["scratch that"], final="right words")
    dictate(h, at=5.0)
    assert (ecodes.KEY_BACKSPACE, 1) not in h.keyboard.events
    assert h.typed_text() == "wrong words" + "right words"


def test_scratch_that_within_a_dictation() -> None:
    pieces = ["first try", "scratch that second", "scratch that"]
    h = Harness(FakeClient(pieces=pieces, final="third try."), live=True, text=SPOKEN)
    dictate(h)
    assert backspaced(h.typed_text()) == "third try."


@pytest.mark.parametrize("live", [True, False], ids=["live", "at-release"])
def test_the_vocabulary_goes_with_every_stream(live: bool) -> None:
    text = TextConfig(vocabulary=["ComfyUI"], spoken_punctuation=True)
    h = Harness(FakeClient("ok"), live=live, text=text)
    dictate(h)
    dictate(h, at=5.0)
    sent = [args["options"] for args in h.client.stream_args]
    assert len(sent) == 2
    for options in sent:
        assert options["vocabulary"] == text.request_vocabulary()
        assert options["vocabulary"][0] == "ComfyUI" and "comma" in options["vocabulary"]
        assert options["language"] == "en"


def test_no_vocabulary_no_option() -> None:
    h = Harness(FakeClient("ok"), text=TextConfig())
    dictate(h)
    assert "vocabulary" not in h.client.stream_args[0]["options"]


def test_the_hook_runs_on_each_piece(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    upper = tmp_path / "upper.sh"
    upper.write_text("#!/bin/sh\ntr a-z A-Z\n")
    upper.chmod(0o755)
    text = TextConfig(hook=[str(upper)])
    h = Harness(FakeClient(pieces=["one two"], final="three"), live=True, text=text)
    dictate(h)
    assert h.typed_text() == "ONE TWO THREE"


def test_scratch_that_erases_a_typed_piece_of_the_same_dictation() -> None:
    client = FakeClient(pieces=["wrong words", "scratch that right"], final="words.")
    h = Harness(client, chunks=[ONE_SECOND], live=True, text=SPOKEN)
    client.finish_gate.clear()  # the later pieces come at the end of the stream
    h.key(ecodes.KEY_INSERT, 1, 0.0)
    h.wait_typed("wrong words")  # typed while the key is held
    h.key(ecodes.KEY_INSERT, 0, 2.0)
    client.finish_gate.set()
    h.finish_sessions()
    assert h.keyboard.events.count((ecodes.KEY_BACKSPACE, 1)) == len("wrong words")
    assert backspaced(h.typed_text()) == "right words."


def test_at_release_scratch_that_takes_back_the_kept_piece() -> None:
    client = FakeClient(pieces=["wrong words", "scratch that right"], final="words.")
    h = Harness(client, live=False, text=SPOKEN)
    dictate(h)
    assert backspaced(h.typed_text()) == "right words."
