"""The ``[text]`` section (docs/text.md): the vocabulary, replacements, spoken punctuation
and hook the clients apply to the text they get."""

from __future__ import annotations

from dataclasses import dataclass, field

from whisperd.config.loading import ConfigError, need_words
from whisperd.protocol import (
    MAX_VOCABULARY_ENTRIES,
    MAX_VOCABULARY_ENTRY_CHARS,
    ProtocolError,
    check_vocabulary,
)
from whisperd.text.commands import DEFAULT_LITERAL_AFTER, Command
from whisperd.text.hook import Hook
from whisperd.text.replacements import RuleError
from whisperd.text.rules import TextRules, replacement_of


@dataclass
class TextConfig:
    """The ``[text]`` section (docs/text.md): read by the clients, which send the
    vocabulary with each request and apply the other rules to the text they get."""

    vocabulary: list[str] = field(default_factory=list)
    replacements: list[dict[str, str]] = field(default_factory=list)
    spoken_punctuation: bool = False
    hint_commands: bool = True
    commands: dict[str, list[str]] = field(default_factory=dict)
    literal_after: list[str] = field(default_factory=lambda: list(DEFAULT_LITERAL_AFTER))
    hook: list[str] = field(default_factory=list)
    hook_timeout: float = 5.0

    def validate(self) -> None:
        try:
            self.vocabulary = check_vocabulary(self.vocabulary)
        except ProtocolError as exc:
            raise ConfigError("text.vocabulary", exc.message) from None
        for index, entry in enumerate(self.replacements):
            key = f"text.replacements[{index}]"
            if not isinstance(entry, dict):
                raise ConfigError(key, 'must be a table such as {heard = "...", written = "..."}')
            try:
                replacement_of(entry).compile()
            except RuleError as exc:
                raise ConfigError(key, str(exc)) from None
        known = {command.value for command in Command}
        for name, phrases in self.commands.items():
            if name not in known:
                raise ConfigError(
                    f"text.commands.{name}", f"unknown command (known: {', '.join(sorted(known))})"
                )
            need_words(f"text.commands.{name}", phrases)
        need_words("text.literal_after", self.literal_after)
        if self.hook:
            need_words("text.hook", self.hook)
        if not 0.1 <= self.hook_timeout <= 120:
            raise ConfigError("text.hook_timeout", "must be within 0.1..120 seconds")

    def rules(self) -> TextRules:
        return TextRules.build(
            [replacement_of(entry) for entry in self.replacements],
            self.spoken_punctuation,
            self.commands,
            self.literal_after,
        )

    def request_vocabulary(self) -> list[str]:
        """What the clients send as the ``vocabulary`` option: the user's entries, then,
        with spoken punctuation and ``hint_commands``, the command phrases (tiny.en hears
        "comma" as "comment" unless told to expect it: docs/text.md), at most 100."""
        entries = list(self.vocabulary)
        if self.spoken_punctuation and self.hint_commands:
            seen = {entry.casefold() for entry in entries}
            for phrase in self.rules().command_phrases():
                if phrase.casefold() not in seen and len(phrase) <= MAX_VOCABULARY_ENTRY_CHARS:
                    entries.append(phrase)
                    seen.add(phrase.casefold())
        return entries[:MAX_VOCABULARY_ENTRIES]

    def make_hook(self) -> Hook | None:
        return Hook(self.hook, self.hook_timeout) if self.hook else None
