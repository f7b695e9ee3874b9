"""The fast path's quality guard on text: does this decode look like a short-window failure?

Pure functions of the decoded text and the audio's length. A ``None`` reason means the
text is plausible; any reason makes the fast path decline, and the regular 30 s path
decodes the utterance instead (docs/fastpath.md). The guard may decline good text (that
only costs time); it must not accept a decoding loop, which would be typed for the user.
"""

from __future__ import annotations

import re

MAX_WORDS_PER_SECOND = 6.0
"""More words than ``2 + 6/s`` of audio cannot be real speech: a hallucination."""


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("don't" is one word)."""
    return re.sub(r"[^\w\s]", " ", text.lower().replace("'", "")).split()


def loop_tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, lower-cased, edge punctuation stripped; tokens made of
    punctuation only ("//", "...") are kept, since decoding loops produce them too."""
    out = []
    for tok in text.lower().split():
        core = tok.strip(".,!?;:\"'()[]")
        out.append(core or tok)
    return out


def repeated_span(text: str) -> str | None:
    """The first immediately repeated block of tokens ("a b a b", or one token three times
    in a row, punctuation-only tokens included: "// // //"), which is how Whisper's
    decoding loops look; ``None`` when there is none."""
    tokens = loop_tokens(text)
    count = len(tokens)
    for i in range(count):
        for n in range(1, (count - i) // 2 + 1):
            if tokens[i : i + n] != tokens[i + n : i + 2 * n]:
                continue
            if n >= 2 or tokens[i : i + 1] == tokens[i + 2 : i + 3]:
                return " ".join(tokens[i : i + 2 * n])
    return None


def doubt(
    text: str, seconds: float, max_words_per_second: float = MAX_WORDS_PER_SECOND
) -> str | None:
    """Why ``text``, decoded from ``seconds`` of audio, looks like a short-window failure;
    ``None`` when it is plausible."""
    count = len(words(text))
    if count > 2 + max_words_per_second * seconds:
        return f"{count} words in {seconds:.2f} s"
    span = repeated_span(text)
    if span is not None:
        return f"repetition {span!r}"
    return None
