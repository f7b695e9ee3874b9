"""whisperd-keys, the real program, with only its virtual keyboard replaced by a recording
one (CI hosts may have no /dev/uinput). Everything else is the program's own: the
configuration, the signal handling, the control socket, the microphone through PortAudio,
the client and the typer. At exit it writes what was typed to OUT as JSON.

    python keys_program.py OUT -- [whisperd-keys options]
"""

from __future__ import annotations

import json
import sys

from whisperd.keys import app
from whisperd.keys.virtual import RecordingKeyboard


def main() -> int:
    out, argv = sys.argv[1], sys.argv[3:]
    keyboard = RecordingKeyboard()
    app.open_virtual_keyboard = lambda backend: keyboard  # type: ignore[assignment]
    code = app.main(argv)
    with open(out, "w") as handle:
        json.dump({"events": keyboard.events, "held": sorted(keyboard.held())}, handle)
    return code


if __name__ == "__main__":
    sys.exit(main())
