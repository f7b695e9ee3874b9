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
from typing import Any

SPELLING = 0.8
"""Letters alike enough on their own ("graphana" / "Grafana" 0.8, "postgres" /
"PostgreSQL" 0.89)."""
SOUND = (0.65, 0.85)
"""Or letters a little alike and consonants very alike ("comfy eye" / "ComfyUI": 0.67
and 1.0). A false match only costs a second decode with a short list, which measured
no worse; of the bench's 50-entry list, these match one entry in the 80 sentences and
phrases of bench/fastpath_corpus.py ("Next slide please" / "Nextcloud")."""
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


def hotwords_of(options: dict[str, Any]) -> str | None:
    """The ``vocabulary`` of one decode as faster-whisper's ``hotwords``, None when empty.

    Hotwords, not the initial prompt: the same text on one window (bench/vocabulary.py),
    but repeated in every window of a long file, and beside the earlier text a stream is
    conditioned on (``initial_prompt``) rather than in its place (docs/text.md).
    """
    return hotwords_text(options.get("vocabulary") or [])


PROMPT_BUDGET_CHARS = 400
"""Entries and earlier text within faster-whisper's 223 previous-text tokens: 8 entries
of 64 unusual characters measured 282 tokens, 200 characters of earlier text about 49."""


def hotwords_in_prompt(options: dict[str, Any]) -> dict[str, Any]:
    """A decode with a forced ``prefix`` (a live piece with its context) and a
    vocabulary: the entries go first in the ``initial_prompt``, before the earlier text.

    faster-whisper gives the model no hotwords when a prefix is forced, so without this
    a live dictation heard its vocabulary in its first piece only ("comfy eye" for
    "ComfyUI" in every later one). Hotwords sit in that same place of the prompt
    (``get_prompt``: the previous-text slot, hotwords first), so the model is told the
    same thing."""
    hotwords = hotwords_of(options)
    if hotwords is None or not options.get("prefix"):
        return options
    # faster-whisper keeps the last 223 tokens of the previous text (entries and earlier
    # text share them here, where hotwords had a budget of their own): the earlier text
    # gives way first, from its start, so the entries are never cut.
    room = max(0, PROMPT_BUDGET_CHARS - len(hotwords) - 1)
    earlier = str(options.get("initial_prompt") or "").strip()
    if len(earlier) > room:  # cut at a word: the rest of a word would be a new one
        earlier = earlier[len(earlier) - room :].partition(" ")[2] if room else ""
    # The vocabulary stays: a decode longer than one window has no prefix after the
    # first, and there faster-whisper gives the entries as hotwords again.
    return {**options, "initial_prompt": f"{hotwords} {earlier}" if earlier else hotwords}


def newly_heard(text: str, options: dict[str, Any]) -> str:
    """``text`` without the forced ``prefix`` it begins with: a vocabulary entry that
    sounds like a word of the context (committed already) is no reason to decode again."""
    prefix = str(options.get("prefix") or "").strip()
    heard = text.strip()
    return heard[len(prefix) :] if prefix and heard.startswith(prefix) else heard


def vocabulary_options(options: dict[str, Any]) -> dict[str, Any]:
    """``hotwords`` for ``WhisperModel.transcribe`` only when there is a vocabulary, so
    that a request without one makes exactly the call it made before."""
    hotwords = hotwords_of(options)
    return {} if hotwords is None else {"hotwords": hotwords}


def plausible_entries(heard: str, vocabulary: Sequence[str]) -> list[str]:
    """The entries of ``vocabulary`` that sound like a run of 1..3 words of ``heard``
    (the best ``MAX_CHOSEN``, in the vocabulary's order).

    Alike means: the same first sound (as a phonetic key keeps it), a length within
    half, and a ``SequenceMatcher`` similarity of the letters of at least ``SPELLING``,
    or of ``SOUND`` for the letters and their consonant skeletons (``skeleton``).
    """
    spans = _spans(heard, max([MAX_SPAN_WORDS, *(len(e.split()) + 1 for e in vocabulary)]))
    scores: dict[int, float] = {}
    for index, entry in enumerate(vocabulary):
        target = letters(entry)
        if target:
            best = _best_match(target, spans.get(skeleton(target)[0], ()))
            if best > 0:
                scores[index] = best
    chosen = sorted(scores, key=lambda i: -scores[i])[:MAX_CHOSEN]
    return [vocabulary[i] for i in sorted(chosen)]


def _spans(heard: str, most_words: int) -> dict[str, set[str]]:
    """Every run of 1..``most_words`` words of ``heard`` as letters, by the first letter
    of its sound key (each distinct run once: a long file repeats most of them)."""
    words = [word for word in map(letters, heard.split()) if word]
    spans: dict[str, set[str]] = {}
    for start in range(len(words)):
        run = ""
        for word in words[start : start + most_words]:
            run += word
            spans.setdefault(skeleton(run[0]), set()).add(run)
    return spans


def skeleton(word: str) -> str:
    """A rough sound key: the first letter, then the consonants, with the usual spellings
    of one sound made one ("ph" f, "ck" k, "c" k, "y" i, ...) and doubles made single:
    "ComfyUI" and "comfy eye" are both "kmf"."""
    for spelled, sound in SOUNDS:
        word = word.replace(spelled, sound)
    if not word:
        return word
    consonants = word[0] + "".join(c for c in word[1:] if c not in "aeiou")
    return "".join(c for i, c in enumerate(consonants) if i == 0 or c != consonants[i - 1])


SOUNDS: tuple[tuple[str, str], ...] = (
    ("ph", "f"),
    ("ck", "k"),
    ("q", "k"),
    ("x", "ks"),
    ("z", "s"),
    ("c", "k"),
    ("w", "u"),
    ("y", "i"),
)


def _sounds_alike(sounded: SequenceMatcher[str], target: str, candidate: str) -> bool:
    """Consonant skeletons alike, or the entry's beginning what was heard ("comma" heard
    as "comment"; not the other way: "read" is not "Redis")."""
    if len(target) >= 2 and candidate.startswith(target):
        return True
    sounded.set_seq1(candidate)
    return sounded.ratio() >= SOUND[1]


def _best_match(target: str, candidates: Iterable[str]) -> float:
    """The best similarity of an alike candidate (0 when none is alike)."""
    spelled = SequenceMatcher(autojunk=False)
    spelled.set_seq2(target)
    sounded = SequenceMatcher(autojunk=False)
    sound = skeleton(target)
    sounded.set_seq2(sound)
    slack = max(2, len(target) // 2)
    low = min(SPELLING, SOUND[0])
    best = 0.0
    for candidate in candidates:
        if abs(len(candidate) - len(target)) > slack:
            continue
        spelled.set_seq1(candidate)
        if spelled.real_quick_ratio() < low or spelled.quick_ratio() < low:
            continue
        score = spelled.ratio()
        if score < SPELLING:
            if score < SOUND[0]:
                continue
            if not _sounds_alike(sounded, sound, skeleton(candidate)):
                continue
        best = max(best, score)
    return best
