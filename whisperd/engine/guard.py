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


PADDING_MARGIN_SECONDS = 0.1
"""A segment starting this close to the end of the speech, or later, is in the padding."""


def starts_in_padding(starts: list[float], speech_end: float) -> str | None:
    """A segment that starts after the speech is the decoder running on into the
    padding of a short window (it then repeats itself); why, or ``None``."""
    for start in starts:
        if start >= speech_end - PADDING_MARGIN_SECONDS:
            return f"a segment starts at {start:.2f} s, after the speech ends at {speech_end:.2f} s"
    return None


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


SAME_WORD_LIMIT = 3
"""A word said this many times in a row is speech ("no no no"); once more is a loop."""
SAME_SYMBOL_LIMIT = 2
"""Punctuation-only tokens ("//", "...") three times in a row are a loop."""
REPEATED_PHRASE_TOKENS = 5
"""The same run of this many tokens twice in one utterance (at most 30 s on the fast
path) is taken for a loop, wherever the two copies are."""
TRUNCATED_COPY_TOKENS = 3
"""A text ending in at least this many tokens (and half a block) that repeat the block
before them is a loop the end of the decode cut off."""


def _same_token_run(tokens: list[str]) -> str | None:
    """One token repeated past its limit: words four times, symbols three."""
    run = 1
    for i in range(1, len(tokens) + 1):
        if i < len(tokens) and tokens[i] == tokens[i - 1]:
            run += 1
            continue
        token = tokens[i - 1] if tokens else ""
        limit = SAME_WORD_LIMIT if any(c.isalnum() for c in token) else SAME_SYMBOL_LIMIT
        if run > limit:
            return " ".join(tokens[i - run : i])
        run = 1
    return None


def _adjacent_copies(tokens: list[str]) -> str | None:
    """A block of two or more tokens followed at once by a copy of itself ("a b a b")."""
    count = len(tokens)
    for i in range(count):
        for n in range(2, (count - i) // 2 + 1):
            if tokens[i : i + n] == tokens[i + n : i + 2 * n]:
                return " ".join(tokens[i : i + 2 * n])
    return None


def _truncated_copy(tokens: list[str]) -> str | None:
    """The text ends in a cut-off copy of the block before it: "a b c d a b c" or, the
    last token cut too, "... comfy eye. then you ... the com"."""
    count = len(tokens)
    for rest in range(TRUNCATED_COPY_TOKENS, count // 2 + 1):
        tail = tokens[count - rest :]
        for n in range(rest, min(2 * rest, count - rest) + 1):
            block = tokens[count - rest - n : count - rest]
            if tail[:-1] == block[: rest - 1] and block[rest - 1].startswith(tail[-1]):
                return " ".join(block)
    return None


def _repeated_phrase(tokens: list[str]) -> str | None:
    """A run of ``REPEATED_PHRASE_TOKENS`` tokens seen twice, the copies not overlapping."""
    first_seen: dict[tuple[str, ...], int] = {}
    for i in range(len(tokens) - REPEATED_PHRASE_TOKENS + 1):
        phrase = tuple(tokens[i : i + REPEATED_PHRASE_TOKENS])
        seen = first_seen.setdefault(phrase, i)
        if i - seen >= REPEATED_PHRASE_TOKENS:
            return " ".join(phrase)
    return None


def repetition(text: str) -> str | None:
    """The repetition that makes ``text`` look like one of Whisper's decoding loops, or
    ``None``: a token past its limit in a row, a block repeated at once, a copy cut off
    at the end, or a long phrase twice. Speech repeats too ("no no no", "very very
    good"), but not like these."""
    tokens = loop_tokens(text)
    return (
        _same_token_run(tokens)
        or _adjacent_copies(tokens)
        or _truncated_copy(tokens)
        or _repeated_phrase(tokens)
    )


def doubt(
    text: str, seconds: float, max_words_per_second: float = MAX_WORDS_PER_SECOND
) -> str | None:
    """Why ``text``, decoded from ``seconds`` of audio, looks like a short-window failure;
    ``None`` when it is plausible."""
    count = len(words(text))
    if count > 2 + max_words_per_second * seconds:
        return f"{count} words in {seconds:.2f} s"
    span = repetition(text)
    if span is not None:
        return f"repetition {span!r}"
    return None
