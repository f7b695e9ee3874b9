"""Performing the Shaper's actions on whisperd-keys' virtual keyboard.

``Type`` goes through the ``Typer`` (layout, fallbacks, counts); ``Key("Enter")`` and
``Erase(n)`` are taps of the Enter and BackSpace keys, which every layout has at the same
place. evdev is imported here only: the rest of ``whisperd.text`` stays standard library.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from whisperd.text.shaper import ENTER, Action, Erase, Key, Type

if TYPE_CHECKING:
    from whisperd.keys.typer import Typer, TypeReport


def perform(
    actions: Sequence[Action], typer: Typer, cancel: threading.Event | None = None
) -> TypeReport:
    """Type ``actions`` in order; the report counts characters, Enters and BackSpaces."""
    from evdev import ecodes

    from whisperd.keys.typer import TypeReport

    total = TypeReport()
    for action in actions:
        if cancel is not None and cancel.is_set():
            break
        if isinstance(action, Type):
            report = typer.type_text(action.text, cancel=cancel)
            total.typed += report.typed
            total.fallback += report.fallback
            total.skipped += report.skipped
            total.methods.extend(report.methods)
        elif isinstance(action, Key):
            if action.name != ENTER:
                raise ValueError(f"no key {action.name!r} in the text actions")
            total.typed += typer.tap(ecodes.KEY_ENTER, 1, cancel=cancel)
        elif isinstance(action, Erase):
            typer.tap(ecodes.KEY_BACKSPACE, action.chars, cancel=cancel)
    return total
