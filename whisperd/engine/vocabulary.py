"""The vocabulary: which of the user's words to tell the model about, for this audio.

A long list in Whisper's prompt makes tiny.en write jargon where none was said ("the
quick brown fox" became "quick-round-fark-stump" with 50 entries; bench/vocabulary.py).
So the audio is first transcribed without the list; only the entries that sound like
something in that text (letters alike, ``plausible_entries``) are given to the model as
hotwords for a second decode. When none is plausible the first text is the answer, the
same as without a vocabulary, at no extra cost. docs/text.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher

SIMILARITY = 0.55
"""Letters alike enough ("comfy eye" / "ComfyUI" 0.67, "Shivaun" / "Siobhan" 0.57). A
false match only costs a second decode with a short list, which measured no worse."""
MAX_CHOSEN = 8
"""At most this many entries in the second decode's prompt (the best matches)."""
MAX_SPAN_WORDS = 3
"""A one-word entry may be heard as up to three words ("comfy eye" for "ComfyUI")."""


def letters(text: str) -> str:
    """Lower-case letters and digits only: how a word is compared."""
    return "".join(c for c in text.casefold() if c.isalnum())


def hotwords_text(entries: Sequence[str]) -> str | None:
    """Entries as faster-whisper's ``hotwords`` text ("ComfyUI, Siobhan"), None when empty."""
    text = ", ".join(entry.strip() for entry in entries if entry.strip())
    return text or None


def plausible_entries(heard: str, vocabulary: Sequence[str]) -> list[str]:
    """The entries of ``vocabulary`` that sound like a run of 1..3 words of ``heard``
    (the best ``MAX_CHOSEN``, in the vocabulary's order)."""
    words = [letters(word) for word in heard.split()]
    words = [word for word in words if word]
    scores: dict[int, float] = {}
    for index, entry in enumerate(vocabulary):
        target = letters(entry)
        if not target:
            continue
        span_words = max(MAX_SPAN_WORDS, len(entry.split()) + 1)
        best = _best_match(target, words, span_words)
        if best >= SIMILARITY:
            scores[index] = best
    chosen = sorted(scores, key=lambda i: -scores[i])[:MAX_CHOSEN]
    return [vocabulary[i] for i in sorted(chosen)]


def _best_match(target: str, words: list[str], span_words: int) -> float:
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    slack = max(2, len(target) // 2)
    best = 0.0
    for start in range(len(words)):
        candidate = ""
        for end in range(start, min(start + span_words, len(words))):
            candidate += words[end]
            if len(candidate) > len(target) + slack:
                break
            if len(candidate) < len(target) - slack:
                continue
            matcher.set_seq1(candidate)
            if matcher.real_quick_ratio() < SIMILARITY or matcher.quick_ratio() < SIMILARITY:
                continue
            best = max(best, matcher.ratio())
            if best == 1.0:
                return best
    return best
