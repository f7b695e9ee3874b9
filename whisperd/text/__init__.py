"""What you say becomes what you meant: replacements, spoken punctuation and commands,
and a post-processing hook, shared by whisperctl and whisperd-keys (docs/text.md).

Pure text in, text or keyboard actions out; nothing here imports numpy or the model.
The vocabulary (words the model should expect) is a request option the daemon passes to
the model (``whisperd.engine.vocabulary.hotwords_of``), not a text rule.
"""

from __future__ import annotations

from whisperd.text.rules import TextRules, replacement_of
from whisperd.text.shaper import (
    Action,
    Erase,
    Key,
    Shaper,
    Type,
    apply_actions,
    settle,
    shape_pieces,
    shape_text,
)

__all__ = [
    "Action",
    "Erase",
    "Key",
    "Shaper",
    "TextRules",
    "Type",
    "apply_actions",
    "replacement_of",
    "settle",
    "shape_pieces",
    "shape_text",
]
