"""``whisperctl dictate start|stop|toggle|cancel``: drive a running whisperd-keys from a
desktop shortcut. Prints nothing on success; one line and exit 1 otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

from whisperd.control.client import ControlFailed, KeysBusy, KeysNotRunning, dictate
from whisperd.control.protocol import Action
from whisperd.runtime import UnsafeRuntime

ACTIONS = tuple(a.value for a in Action)
EXIT_FAILED = 1


def run_dictate(path: Path, action: str) -> int:
    try:
        dictate(path, Action(action))
    except (KeysNotRunning, KeysBusy) as exc:  # their messages name whisperd-keys
        return _fail(str(exc))
    except ControlFailed as exc:
        return _fail(f"whisperd-keys: {exc}")
    except UnsafeRuntime as exc:
        return _fail(str(exc))
    except TimeoutError:
        return _fail(f"whisperd-keys did not answer on {path}")
    except OSError as exc:
        return _fail(f"cannot reach whisperd-keys on {path}: {exc.strerror or exc}")
    return 0


def _fail(message: str) -> int:
    print(f"whisperctl: {message}", file=sys.stderr)
    return EXIT_FAILED
