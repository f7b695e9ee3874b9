"""The ``vocabulary`` request option: checked like every byte from a client, and turned
into faster-whisper's ``hotwords`` only when it has words."""

from __future__ import annotations

from typing import Any

import pytest

from whisperd.engine.core import hotwords_of, vocabulary_options
from whisperd.protocol import (
    MAX_VOCABULARY_ENTRIES,
    MAX_VOCABULARY_ENTRY_CHARS,
    ErrorCode,
    ProtocolError,
    Transcribe,
    parse_request,
)


def request(vocabulary: Any) -> dict[str, Any]:
    return {"type": "transcribe", "id": 7, "format": "file", "options": {"vocabulary": vocabulary}}


def test_a_valid_vocabulary_is_kept_in_order() -> None:
    parsed = parse_request(request(["ComfyUI", "Siobhan", "Kubernetes"]))
    assert isinstance(parsed, Transcribe)
    assert parsed.options["vocabulary"] == ["ComfyUI", "Siobhan", "Kubernetes"]
    limit = ["w" * MAX_VOCABULARY_ENTRY_CHARS] * MAX_VOCABULARY_ENTRIES
    assert parse_request(request(limit)).options["vocabulary"] == limit  # type: ignore[union-attr]
    assert parse_request(request([])).options["vocabulary"] == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("vocabulary", "message"),
    [
        ("ComfyUI", "must be list"),
        ({"a": 1}, "must be list"),
        (["ok", 3], "list of strings"),
        (["ok", None], "list of strings"),
        (["ok", ["nested"]], "list of strings"),
        ([""], "1..64"),
        (["   "], "1..64"),
        (["w" * (MAX_VOCABULARY_ENTRY_CHARS + 1)], "1..64"),
        (["w"] * (MAX_VOCABULARY_ENTRIES + 1), "at most 100"),
        (["x"] * 1_000_000, "at most 100"),
        (["new\nline"], "control characters"),
        (["\x1b[31mred"], "control characters"),
        (["zero\u200bwidth"], "control characters"),
    ],
)
def test_hostile_vocabularies_are_refused(vocabulary: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(request(vocabulary))
    assert caught.value.code == ErrorCode.BAD_FIELD
    assert caught.value.request_id == 7
    assert message in caught.value.message
    assert not caught.value.fatal  # the connection stays usable


def test_hotwords_only_with_words() -> None:
    assert vocabulary_options({}) == {}
    assert vocabulary_options({"vocabulary": []}) == {}
    assert hotwords_of({"vocabulary": []}) is None
    assert vocabulary_options({"vocabulary": ["ComfyUI"]}) == {"hotwords": "ComfyUI"}
    assert hotwords_of({"vocabulary": [" ComfyUI ", "Siobhan"]}) == "ComfyUI, Siobhan"
