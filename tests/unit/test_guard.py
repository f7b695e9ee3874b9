"""The fast path's quality guard on text (whisperd.engine.guard): golden cases.

The loops are decodes seen on real CPUs (issue 10: tiny.en int8 on an Intel Xeon turned
4 s of hotwords.mp3 into the first one); the plausible texts are speech a user may
dictate, repetition included. A loop accepted is typed for the user; plausible text
doubted only costs the regular path's time, so the guard leans to doubt.
"""

from __future__ import annotations

import pytest

from whisperd.engine.guard import doubt, starts_in_padding

# Seen on an Intel Xeon (AVX-512): 25 words in 4 s, the second copy cut off by the end
# of the decode, so no block is repeated whole.
COMFY_LOOP = (
    " Then you go into your comfy eye folder again in the comfy eye."
    " Then you go into your comfy eye folder again in the com"
)

LOOPS = [
    (COMFY_LOOP, 4.0),
    # The same loop with a third copy cut off.
    (
        " Then you go into your comfy eye folder again in the comfy eye."
        " Then you go into your comfy eye folder again in the comfy eye."
        " Then you go into your comfy eye folder again in the com",
        8.0,
    ),
    # A truncated repeat of a short block at the end of the decode.
    (" Open the settings window. Open the settings win", 3.0),
    # A long phrase twice with other words between the copies.
    (" I want to go to the store and then I want to go to the store.", 6.0),
    # One word many times; punctuation-only tokens loop too.
    (" the the the the", 3.0),
    (" to deal in the software without restriction. // // // // //", 5.0),
    # Already caught before: whole copies side by side.
    (" Delete that. Delete that.", 2.0),
    (" The server crashed. The server crashed.", 3.0),
    (" new line, new line, new line.", 3.0),
    # More words than the audio can hold.
    (" one two three four five six seven eight nine ten eleven twelve", 1.5),
]

PLAUSIBLE = [
    (" No, no, no.", 1.5),
    (" no no no", 1.5),
    (" Very very good.", 1.5),
    (" I I think so.", 1.5),
    (" Bye-bye.", 1.0),
    (" Thank you.", 1.0),
    (" Ha ha ha, that was funny.", 2.5),
    (
        " And so my fellow Americans, ask not what your country can do for you,"
        " ask what you can do for your country.",
        11.0,
    ),
    (" Wait... what?", 1.5),
    (" Save the file and close the window.", 2.5),
    (
        " The meeting has been moved to the large conference room on the second floor."
        " Please forward this message to everyone in the department.",
        9.0,
    ),
    (" Open the file, then open the other file.", 3.0),
    ("", 1.0),
]


@pytest.mark.parametrize(("text", "seconds"), LOOPS)
def test_loops_are_doubted(text: str, seconds: float) -> None:
    assert doubt(text, seconds) is not None


@pytest.mark.parametrize(("text", "seconds"), PLAUSIBLE)
def test_plausible_speech_passes(text: str, seconds: float) -> None:
    assert doubt(text, seconds) is None


def test_the_reason_names_the_repetition() -> None:
    reason = doubt(COMFY_LOOP, 4.0)
    assert reason is not None and "then you go into your" in reason


@pytest.mark.parametrize(
    ("starts", "speech_end", "late"),
    [
        ([0.0, 2.4], 4.0, False),
        ([0.0, 3.89], 4.0, False),
        ([0.0, 3.9], 4.0, True),  # within 0.1 s of the end: the decoder ran on
        ([4.5], 4.0, True),
        ([], 4.0, False),
    ],
)
def test_a_segment_in_the_padding_is_doubted(
    starts: list[float], speech_end: float, late: bool
) -> None:
    assert (starts_in_padding(starts, speech_end) is not None) is late
