"""Key names as users write them in the configuration: ``insert``, ``KEY_INSERT``,
``KEY_RIGHTCTRL+KEY_SPACE`` or ``rightctrl+space``, resolved to Linux evdev key codes.

The table comes from python-evdev's ``ecodes`` (a C extension generated from the kernel
headers), so every key the kernel knows can be a trigger.
"""

from __future__ import annotations

from evdev import ecodes

# Friendly aliases for keys whose kernel names are awkward to guess.
_ALIASES: dict[str, str] = {
    "ctrl": "KEY_LEFTCTRL",
    "control": "KEY_LEFTCTRL",
    "shift": "KEY_LEFTSHIFT",
    "alt": "KEY_LEFTALT",
    "altgr": "KEY_RIGHTALT",
    "super": "KEY_LEFTMETA",
    "meta": "KEY_LEFTMETA",
    "win": "KEY_LEFTMETA",
    "ins": "KEY_INSERT",
    "del": "KEY_DELETE",
    "esc": "KEY_ESC",
    "return": "KEY_ENTER",
    "pgup": "KEY_PAGEUP",
    "pgdown": "KEY_PAGEDOWN",
    "capslock": "KEY_CAPSLOCK",
    "menu": "KEY_COMPOSE",
}

# Keys that only modify others. Typing waits until the user has released all of them.
MODIFIER_CODES: frozenset[int] = frozenset(
    {
        ecodes.KEY_LEFTCTRL,
        ecodes.KEY_RIGHTCTRL,
        ecodes.KEY_LEFTSHIFT,
        ecodes.KEY_RIGHTSHIFT,
        ecodes.KEY_LEFTALT,
        ecodes.KEY_RIGHTALT,
        ecodes.KEY_LEFTMETA,
        ecodes.KEY_RIGHTMETA,
    }
)


class KeyNameError(ValueError):
    """A key name that does not exist; the message is meant for the user."""


def key_code(name: str) -> int:
    """The evdev code of one key name (case-insensitive, with or without ``KEY_``)."""
    cleaned = name.strip()
    if not cleaned:
        raise KeyNameError("empty key name")
    upper = cleaned.upper()
    candidates = [_ALIASES.get(cleaned.lower(), ""), upper, "KEY_" + upper]
    for candidate in candidates:
        code = ecodes.ecodes.get(candidate) if candidate.startswith(("KEY_", "BTN_")) else None
        if isinstance(code, int) and 0 < code <= ecodes.KEY_MAX:
            return code
    raise KeyNameError(f"unknown key name {name!r} (use Linux names such as KEY_INSERT or insert)")


def parse_combo(spec: str) -> tuple[int, ...]:
    """Parse ``a+b+c`` into key codes, in the written order (the last one is the main key)."""
    parts = spec.split("+")
    codes = tuple(key_code(part) for part in parts)
    if len(set(codes)) != len(codes):
        raise KeyNameError(f"{spec!r} names the same key twice")
    return codes


def key_name(code: int) -> str:
    """The canonical kernel name of a code, for messages (never for typed text)."""
    name = ecodes.KEY.get(code) if code in ecodes.KEY else ecodes.BTN.get(code)
    if isinstance(name, list | tuple):
        return str(name[0])
    return str(name) if name else f"KEY_{code}"
