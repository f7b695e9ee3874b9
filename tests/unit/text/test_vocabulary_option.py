"""The ``vocabulary`` request option: checked like every byte from a client, and turned
into faster-whisper's ``hotwords`` only when it has words."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from whisperd.config import DaemonConfig
from whisperd.engine import Engine
from whisperd.engine.vocabulary import (
    MAX_CHOSEN,
    PROMPT_BUDGET_CHARS,
    hotwords_in_prompt,
    hotwords_of,
    newly_heard,
    plausible_entries,
    vocabulary_options,
)
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


@pytest.mark.parametrize(
    ("heard", "vocabulary", "chosen"),
    [
        ("Then you go into your comfy eye folder", ["Kubernetes", "ComfyUI"], ["ComfyUI"]),
        ("we use pie torch", ["Siobhan", "PyTorch"], ["PyTorch"]),
        ("the cube or net ease cluster", ["Kubernetes"], ["Kubernetes"]),
        ("deploy it on kubernetes today", ["kubernetes", "Kafka"], ["kubernetes"]),
        ("the quick brown fox jumps", ["ComfyUI", "Kubernetes", "Thibault", "PyTorch"], []),
        ("open vs code and graphana", ["VS Code", "Grafana", "Redis"], ["VS Code", "Grafana"]),
        ("", ["ComfyUI"], []),
        ("comfy eye", [], []),
        ("Hello, comment world new line by period.", ["comma", "new line", "period"], None),
    ],
)
def test_plausible_entries(heard: str, vocabulary: list[str], chosen: list[str] | None) -> None:
    found = plausible_entries(heard, vocabulary)
    assert found == (vocabulary if chosen is None else chosen)


def test_plausible_entries_are_capped_and_keep_the_list_order() -> None:
    vocabulary = [f"wordy{chr(97 + i)}" for i in range(20)]
    found = plausible_entries(" ".join(vocabulary), vocabulary)
    assert len(found) == MAX_CHOSEN and found == sorted(found, key=vocabulary.index)


class FakeWhisper:
    """faster-whisper's ``transcribe`` as far as the engine's regular path uses it: it
    writes "ComfyUI" only when told to expect it, and records every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[Any, Any]:
        self.calls.append(kwargs)
        text = (
            " go into your ComfyUI folder"
            if "ComfyUI" in kwargs.get("hotwords", "")
            else (" go into your comfy eye folder")
        )
        segment = SimpleNamespace(start=0.0, end=2.0, text=text)
        return iter([segment]), SimpleNamespace(language="en")


def engine_with(model: FakeWhisper) -> Engine:
    engine = Engine(DaemonConfig())
    engine._model = model  # type: ignore[assignment]
    return engine


def speech() -> Any:
    import numpy as np

    return (np.sin(np.arange(32000) / 5.0) * 0.3).astype(np.float32)


def test_the_engine_tells_the_model_only_the_plausible_entries() -> None:
    model = FakeWhisper()
    sent: list[dict[str, Any]] = []
    vocabulary = ["Kubernetes", "ComfyUI", "Siobhan"]
    result = engine_with(model).transcribe(speech(), {"vocabulary": vocabulary}, sent.append)
    assert result.text == "go into your ComfyUI folder"
    assert [call.get("hotwords") for call in model.calls] == [None, "ComfyUI"]
    assert "hotwords" not in model.calls[0]  # the first decode is exactly a plain one
    assert [s["text"] for s in sent] == ["go into your ComfyUI folder"]  # only the answer


def test_no_plausible_entry_means_one_plain_decode() -> None:
    model = FakeWhisper()
    sent: list[dict[str, Any]] = []
    result = engine_with(model).transcribe(speech(), {"vocabulary": ["Kubernetes"]}, sent.append)
    assert result.text == "go into your comfy eye folder"
    assert len(model.calls) == 1 and "hotwords" not in model.calls[0]
    assert [s["text"] for s in sent] == [result.text]


def test_an_empty_vocabulary_makes_the_same_call_as_none() -> None:
    with_empty, without = FakeWhisper(), FakeWhisper()
    engine_with(with_empty).transcribe(speech(), {"vocabulary": []})
    engine_with(without).transcribe(speech(), {})
    assert with_empty.calls == without.calls and len(without.calls) == 1


def test_ordinary_sentences_match_nothing_of_the_50_entry_list() -> None:
    """So the bench's sentences are decoded once, exactly as without a vocabulary."""
    from bench.fastpath_corpus import SENTENCES
    from bench.vocabulary import VOCABULARY_50

    assert plausible_entries(" ".join(SENTENCES[:40]), list(VOCABULARY_50)) == []
    heard = "go to comfy eye. " + " ".join(SENTENCES[:40])
    assert plausible_entries(heard, list(VOCABULARY_50)) == ["ComfyUI"]


def test_with_a_forced_prefix_the_entries_go_first_in_the_prompt() -> None:
    """faster-whisper drops the hotwords when a prefix is forced (a live piece decoded
    with its context): the entries then lead the initial prompt, before the earlier text,
    where the hotwords would have been."""
    live = {"prefix": "And so my fellow Americans", "initial_prompt": "Earlier words."}
    entries = {"vocabulary": ["ComfyUI", "Siobhan"]}
    moved = hotwords_in_prompt({**live, **entries})
    assert moved == {**live, **entries, "initial_prompt": "ComfyUI, Siobhan Earlier words."}
    alone = {"prefix": "Hello", "vocabulary": ["ComfyUI"]}
    assert hotwords_in_prompt(alone) == {**alone, "initial_prompt": "ComfyUI"}
    # faster-whisper keeps 223 tokens of it: the earlier text gives way, never an entry.
    cut = hotwords_in_prompt({**alone, "initial_prompt": "word " * 200})
    assert cut["initial_prompt"].startswith("ComfyUI word")
    assert len(cut["initial_prompt"]) <= PROMPT_BUDGET_CHARS
    many = ["x" * 64] * 8
    full = hotwords_in_prompt({**live, "vocabulary": many})
    assert full["initial_prompt"] == ", ".join(many)


def test_an_entry_like_a_word_of_the_context_is_not_heard_again() -> None:
    options = {"prefix": "Open the comfy eye folder."}
    heard = "Open the comfy eye folder. Then close it."
    assert newly_heard(heard, options) == " Then close it."
    assert newly_heard(heard, {}) == heard
    # A decode that did not reproduce its prefix is judged whole.
    assert newly_heard("Something else.", options) == "Something else."


class EchoingPrefix(FakeWhisper):
    """As faster-whisper with a forced prefix: the prefix, then what the piece says
    ("ComfyUI" when the entries are in the prompt, where ``hotwords_in_prompt`` puts them);
    ``stop_after_prefix``: with the entries in the prompt the model closes its segment
    right after the prefix."""

    def __init__(self, heard: str = " go into your comfy eye folder", stop: bool = False):
        super().__init__()
        self.heard, self.stop = heard, stop

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[Any, Any]:
        self.calls.append(kwargs)
        told = "ComfyUI" in (kwargs.get("initial_prompt") or "")
        new = (
            ""
            if told and self.stop
            else self.heard.replace("comfy eye", "ComfyUI")
            if told
            else self.heard
        )
        segment = SimpleNamespace(start=0.0, end=2.0, text=str(kwargs["prefix"]) + new)
        return iter([segment]), SimpleNamespace(language="en")


LIVE_PIECE = {"prefix": "Then you", "initial_prompt": "Earlier.", "vocabulary": ["ComfyUI"]}


def test_a_piece_with_context_is_decoded_again_with_the_entries_in_its_prompt() -> None:
    model = EchoingPrefix()
    result = engine_with(model).transcribe(speech(), LIVE_PIECE)
    assert result.text == "Then you go into your ComfyUI folder"
    assert [call.get("initial_prompt") for call in model.calls] == ["Earlier.", "ComfyUI Earlier."]
    assert all(call["prefix"] == "Then you" for call in model.calls)


def test_a_look_alike_in_the_context_alone_costs_no_second_decode() -> None:
    model = EchoingPrefix(heard=" and close it")
    piece = {**LIVE_PIECE, "prefix": "Open the comfy eye folder"}
    result = engine_with(model).transcribe(speech(), piece)
    assert result.text == "Open the comfy eye folder and close it"
    assert len(model.calls) == 1


def test_entries_that_stop_the_model_after_the_prefix_leave_the_first_words() -> None:
    model = EchoingPrefix(stop=True)
    result = engine_with(model).transcribe(speech(), LIVE_PIECE)
    assert result.text == "Then you go into your comfy eye folder"
    assert len(model.calls) == 2
