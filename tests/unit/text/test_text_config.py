"""The [text] section through the one loader: defaults, rules built from it, refusals."""

from __future__ import annotations

import tomllib

import pytest

from whisperd.config import ConfigError, TextConfig, load_section
from whisperd.text import shape_text


def load(toml: str) -> TextConfig:
    return load_section(tomllib.loads(toml), "text", TextConfig)


def test_defaults_change_nothing() -> None:
    config = load("")
    assert config.vocabulary == [] and config.hook == [] and not config.spoken_punctuation
    rules = config.rules()
    assert not rules.active
    assert shape_text("hello comma world period", rules) == "hello comma world period"
    assert config.make_hook() is None


def test_a_full_section() -> None:
    config = load(
        """
[text]
vocabulary = ["ComfyUI", "Siobhan"]
spoken_punctuation = true
literal_after = ["a", "the"]
replacements = [
  { heard = "comfy eye", written = "ComfyUI" },
  { regex = '(\\d+) percent', written = '\\1 %' },
]
hook = ["/usr/bin/tr", "a-z", "A-Z"]
hook_timeout = 2

[text.commands]
period = ["period", "full stop", "punkt"]
"""
    )
    assert config.vocabulary == ["ComfyUI", "Siobhan"]
    assert config.hook_timeout == 2.0
    rules = config.rules()
    assert shape_text("open comfy eye at 50 percent punkt", rules) == "open ComfyUI at 50 %."
    hook = config.make_hook()
    assert hook is not None and hook.argv == ["/usr/bin/tr", "a-z", "A-Z"]


@pytest.mark.parametrize(
    ("toml", "key", "message"),
    [
        ("[text]\nvocabulary = 'ComfyUI'", "text.vocabulary", "must be list"),
        ("[text]\nvocabulary = [1]", "text.vocabulary", "list of strings"),
        ("[text]\nvocabulary = ['']", "text.vocabulary", "1..64"),
        ("[text]\nvocabulary = ['x' ]\nspoken_punctuation = 'yes'", "text.spoken", "bool"),
        ("[text]\nvocabulary = [" + "'w'," * 101 + "]", "text.vocabulary", "at most 100"),
        ('[text]\nvocabulary = ["a\\u0007b"]', "text.vocabulary", "control"),
        ("[text]\nreplacements = ['x']", "text.replacements[0]", "must be a table"),
        ("[text]\nreplacements = [{heard = 'x'}]", "text.replacements[0]", "written"),
        (
            "[text]\nreplacements = [{heard = 'a', written = 'b'}, {regex = '(', written = 'x'}]",
            "text.replacements[1]",
            "regular expression",
        ),
        (
            "[text]\nreplacements = [{heard = 'a', regex = 'b', written = 'c'}]",
            "text.replacements[0]",
            "got keys",
        ),
        ("[text]\nreplacements = [{heard = ' ', written = 'c'}]", "text.replacements[0]", "word"),
        ("[text.commands]\nfull_stop = ['x']", "text.commands.full_stop", "unknown command"),
        ("[text.commands]\nperiod = 'x'", "text.commands.period", "list of non-empty"),
        ("[text.commands]\nperiod = ['']", "text.commands.period", "list of non-empty"),
        ("[text]\nhook = 'tr a-z A-Z'", "text.hook", "must be list"),
        ("[text]\nhook = ['']", "text.hook", "non-empty"),
        ("[text]\nhook = ['x']\nhook_timeout = 0", "text.hook_timeout", "0.1..120"),
        ("[text]\nhook_timeout = nan", "text.hook_timeout", "finite"),
        ("[text]\nunknown = 1", "text.unknown", "unknown key"),
    ],
)
def test_bad_values_are_refused_by_key(toml: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(toml)
    assert caught.value.key.startswith(key), caught.value
    assert message in caught.value.message, caught.value


def test_text_is_a_known_section() -> None:
    from whisperd.config import SECTIONS

    assert "text" in SECTIONS


def test_the_vocabulary_sent_hints_the_command_phrases() -> None:
    assert load("[text]\nvocabulary = ['ComfyUI']").request_vocabulary() == ["ComfyUI"]
    spoken = load("[text]\nvocabulary = ['ComfyUI', 'Comma']\nspoken_punctuation = true")
    sent = spoken.request_vocabulary()
    assert sent[:2] == ["ComfyUI", "Comma"]  # the user's entries first
    assert "new line" in sent and "period" in sent and "comma" not in sent  # no duplicate
    quiet = load("[text]\nspoken_punctuation = true\nhint_commands = false")
    assert quiet.request_vocabulary() == []
    german = load("[text]\nspoken_punctuation = true\n[text.commands]\nperiod = ['Punkt']")
    assert "Punkt" in german.request_vocabulary() and "full stop" not in german.request_vocabulary()
    many = TextConfig(vocabulary=[f"w{i}" for i in range(100)], spoken_punctuation=True)
    assert many.request_vocabulary() == many.vocabulary  # never over the limit
