"""The text rules of the ``[text]`` configuration, compiled once (docs/text.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whisperd.text.commands import CommandTable
from whisperd.text.replacements import Replacement, Replacer, RuleError


@dataclass(frozen=True)
class TextRules:
    replacer: Replacer
    commands: CommandTable | None  # None: spoken punctuation is off

    @classmethod
    def build(
        cls,
        replacements: list[Replacement] | None = None,
        spoken_punctuation: bool = False,
        commands: dict[str, list[str]] | None = None,
        literal_after: list[str] | None = None,
    ) -> TextRules:
        table = CommandTable(commands, literal_after) if spoken_punctuation else None
        return cls(Replacer(replacements or []), table)

    def command_phrases(self) -> list[str]:
        """The command phrases as configured (for the vocabulary hint), in table order."""
        return [] if self.commands is None else list(self.commands.spoken)

    @property
    def active(self) -> bool:
        return bool(self.replacer.rules) or self.commands is not None


def replacement_of(entry: Mapping[str, Any]) -> Replacement:
    """One ``replacements`` entry of config.toml: ``{heard = "...", written = "..."}`` or
    ``{regex = "...", written = "..."}``; raises RuleError saying what is wrong."""
    keys = set(entry)
    written = entry.get("written")
    if not isinstance(written, str):
        raise RuleError('each rule needs written = "..." (the text to type)')
    if keys == {"heard", "written"} and isinstance(entry["heard"], str):
        if not entry["heard"].split():
            raise RuleError("heard must name a word or a phrase")
        return Replacement(entry["heard"], written)
    if keys == {"regex", "written"} and isinstance(entry["regex"], str):
        if not entry["regex"]:
            raise RuleError("regex must not be empty")
        return Replacement(entry["regex"], written, regex=True)
    raise RuleError(
        'each rule is {heard = "...", written = "..."} or {regex = "...", written = "..."}; '
        f"got keys {', '.join(sorted(map(str, keys)))}"
    )
