"""The vocabulary: which of the user's words to tell the model about, for this audio.

A long list in Whisper's prompt makes tiny.en write jargon where none was said ("the
quick brown fox" became "quick-round-fark-stump" with 50 entries; bench/vocabulary.py).
So the audio is first transcribed without the list; only the entries that sound like
something in that text (letters alike, ``plausible_entries``) are given to the model as
hotwords for a second decode. When none is plausible the first text is the answer, the
same as without a vocabulary, at no extra cost. docs/text.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    (the best ``MAX_CHOSEN``, in the vocabulary's order).

    Alike means: the same first letter (as a phonetic key keeps it), a length within
    half, and ``SequenceMatcher`` similarity of the letters at least ``SIMILARITY``.
    """
    spans = _spans(heard, max([MAX_SPAN_WORDS, *(len(e.split()) + 1 for e in vocabulary)]))
    scores: dict[int, float] = {}
    for index, entry in enumerate(vocabulary):
        target = letters(entry)
        if target:
            best = _best_match(target, spans.get(target[0], ()))
            if best >= SIMILARITY:
                scores[index] = best
    chosen = sorted(scores, key=lambda i: -scores[i])[:MAX_CHOSEN]
    return [vocabulary[i] for i in sorted(chosen)]


def _spans(heard: str, most_words: int) -> dict[str, set[str]]:
    """Every run of 1..``most_words`` words of ``heard`` as letters, by first letter
    (each distinct run once: a long file repeats most of them)."""
    words = [word for word in map(letters, heard.split()) if word]
    spans: dict[str, set[str]] = {}
    for start in range(len(words)):
        run = ""
        for word in words[start : start + most_words]:
            run += word
            spans.setdefault(run[0], set()).add(run)
    return spans


def _best_match(target: str, candidates: Iterable[str]) -> float:
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)
    slack = max(2, len(target) // 2)
    best = 0.0
    for candidate in candidates:
        if abs(len(candidate) - len(target)) > slack:
            continue
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() < SIMILARITY or matcher.quick_ratio() < SIMILARITY:
            continue
        best = max(best, matcher.ratio())
        if best == 1.0:
            break
    return best
