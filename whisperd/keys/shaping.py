"""The ``[text]`` rules in whisperd-keys: the one ``whisperd.text.Shaper`` of the program.

Each dictation's pieces go through it in order (live: each commit event as it comes, the
last with ``final=True``; type-at-release: the kept pieces at the end), and what it
returns becomes one ``Shaped`` event for the typist: the text to type ("\\n" for Enter)
and the BackSpaces of a "scratch that" first (docs/text.md, docs/keys.md).

The Shaper is not thread-safe; it is only called by the typist that holds the service's
typing lock, so one dictation at a time, in order. It remembers what it typed across
dictations ("scratch that" at the start of a dictation takes back the previous one)
until the user presses a key: then the cursor may be anywhere, and a BackSpace could
delete the user's own text, so everything typed before is forgotten.
"""

from __future__ import annotations

import threading

from whisperd.config import TextConfig
from whisperd.keys.livetype import BACKSPACE, Shaped, settle_text
from whisperd.text import Erase, Key, Shaper, Type
from whisperd.text.shaper import ENTER


class KeysShaper:
    def __init__(self, text: TextConfig) -> None:
        self.shaper = Shaper(text.rules(), post=text.make_hook())
        self._user_typed = threading.Event()

    def user_typed(self) -> None:
        """From the key loop: the user pressed a key (typing, moving the cursor)."""
        self._user_typed.set()

    def feed(self, piece: str, final: bool) -> Shaped:
        """The typist's event for one committed piece (typist thread only)."""
        if self._user_typed.is_set():
            self._user_typed.clear()
            self.shaper.forget()
        # A BackSpace character in the model's text must not become a key press.
        text, erase = "", 0
        for action in self.shaper.feed(piece.replace(BACKSPACE, ""), final):
            if isinstance(action, Type):
                text += action.text
            elif isinstance(action, Key) and action.name == ENTER:
                text += "\n"
            elif isinstance(action, Erase) and text:
                text = settle_text(text, action.chars)
            elif isinstance(action, Erase):  # the Shaper's Erase comes first
                erase += action.chars
        return Shaped(text, erase)
