"""``whisperd-keys``: hold a key, speak, release, and the words are typed where the cursor is.

The entry point only: dictation needs the `keys` extra (evdev, sounddevice, python-uinput,
xkbcommon), which a user who only transcribes files may not have installed. Without it this
says so in one line and how to install it, instead of an import traceback; the program
itself is whisperd.keys.app.
"""

from __future__ import annotations

import sys

EXIT_UNAVAILABLE = 1


def main(argv: list[str] | None = None) -> int:
    try:
        from whisperd.keys import app
    except ImportError as exc:
        from whisperd.doctor import KEYS_EXTRA_HINT, missing_keys_modules

        missing = missing_keys_modules() or [str(exc.name or exc)]
        print(
            f"whisperd-keys: dictation needs the 'keys' extra, not installed here "
            f"(missing: {', '.join(missing)}): {KEYS_EXTRA_HINT}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
