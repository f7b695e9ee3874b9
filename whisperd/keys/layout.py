"""Characters to key strokes for the user's XKB layout, through libxkbcommon.

The compositor (or X server) turns our virtual key codes into characters with the user's
keymap, so we must press the key that *their* layout maps to each character: on AZERTY
'a' is where QWERTY has 'q', on Dvorak 'v' is on the '.' key, '@' needs AltGr on German.
We compile the same keymap with xkbcommon and walk it backwards (keysym -> key + modifier
keys), then prove every entry by replaying it through an xkbcommon state.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from evdev import ecodes
from xkbcommon import xkb

log = logging.getLogger(__name__)

# xkbcommon key codes are the kernel's evdev codes plus 8 (an X11 legacy).
XKB_OFFSET = 8

# When a modifier can be produced by several keys, press the conventional one.
_PREFERRED_MODIFIER_KEYS = (
    ecodes.KEY_LEFTSHIFT,
    ecodes.KEY_RIGHTALT,
    ecodes.KEY_RIGHTSHIFT,
    ecodes.KEY_LEFTCTRL,
    ecodes.KEY_LEFTALT,
)

# Keysym ranges of the keypad: its keys depend on NumLock and send other sequences in
# terminals in "application keypad" mode, so they are used only as a last resort.
_KEYPAD_KEYSYMS = range(0xFF80, 0xFFBE)

# X11 key codes stop at 255, so evdev codes from 248 on never reach X11 applications
# (Xwayland included): such keys (KEY_EURO, ...) are not used, the fallback is.
_X11_MAX_EVDEV_CODE = 255 - XKB_OFFSET

# The keys every PC keyboard has (main block, function keys, keypad up to KEY_102ND);
# others (KEY_KPLEFTPAREN, KEY_DOLLAR, ...) only when a character has no other key.
_LAST_COMMON_KEY = ecodes.KEY_F12
_KEYPAD_CODES = frozenset({ecodes.KEY_KPASTERISK, *range(ecodes.KEY_KP7, ecodes.KEY_KPDOT + 1)})

_CONTROL_CHARS = {"\n": ecodes.KEY_ENTER, "\t": ecodes.KEY_TAB}


@dataclass(frozen=True)
class LayoutName:
    layout: str
    variant: str = ""
    source: str = "default"
    # XKB options matter: "compose:ralt" or "lv3:caps_switch" move the AltGr level.
    options: str = ""

    def __str__(self) -> str:
        name = f"{self.layout}({self.variant})" if self.variant else self.layout
        return f"{name} options {self.options}" if self.options else name


@dataclass(frozen=True)
class KeyStroke:
    """Hold ``modifiers`` (evdev codes, in order), tap ``code``, release in reverse."""

    code: int
    modifiers: tuple[int, ...] = ()


class LayoutError(Exception):
    """An XKB layout that cannot be compiled; the message is meant for the user."""


def detect_layout(
    layout: str = "",
    variant: str = "",
    environ: Mapping[str, str] | None = None,
    options: str = "",
) -> LayoutName:
    """The layout to type with: configuration, then environment, then the system settings."""
    if layout:
        return LayoutName(layout, variant, "configuration", options)
    env = os.environ if environ is None else environ
    if env.get("XKB_DEFAULT_LAYOUT"):
        return _first(
            env["XKB_DEFAULT_LAYOUT"],
            env.get("XKB_DEFAULT_VARIANT", ""),
            "environment",
            options or env.get("XKB_DEFAULT_OPTIONS", ""),
        )
    found = (
        _from_gnome()
        or _from_kde(_config_home(env) / "kxkbrc")
        or _from_localectl()
        or _from_default_keyboard(Path("/etc/default/keyboard"))
    )
    if found is None:
        return LayoutName("us", "", "default", options)
    return replace(found, options=options) if options else found


def _first(layouts: str, variants: str, source: str, options: str = "") -> LayoutName:
    # Several layouts ("us,de") are switchable groups; we type with the first one.
    layout = layouts.split(",")[0].strip()
    variant = variants.split(",")[0].strip()
    return LayoutName(layout or "us", variant, source, options.strip())


def _config_home(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _from_gnome() -> LayoutName | None:
    """GNOME keeps the layouts in gsettings, not in localectl."""
    if not shutil.which("gsettings"):
        return None
    schema = "org.gnome.desktop.input-sources"
    sources = _run(["gsettings", "get", schema, "sources"])
    options = _run(["gsettings", "get", schema, "xkb-options"])
    return parse_gnome(sources, options)


def parse_gnome(sources: str, options: str) -> LayoutName | None:
    first = re.search(r"\(\s*'xkb'\s*,\s*'([^']+)'\s*\)", sources)
    if first is None:
        return None
    layout, _, variant = first.group(1).partition("+")
    return LayoutName(layout, variant, "GNOME", ",".join(re.findall(r"'([^']+)'", options)))


def _from_kde(path: Path) -> LayoutName | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return parse_kxkbrc(text)


def parse_kxkbrc(text: str) -> LayoutName | None:
    values = dict(
        re.findall(r"^\s*(LayoutList|VariantList|Options|Use)\s*=\s*(.*?)\s*$", text, re.M)
    )
    if values.get("Use", "true").lower() == "false" or not values.get("LayoutList"):
        return None
    return _first(
        values["LayoutList"], values.get("VariantList", ""), "KDE", values.get("Options", "")
    )


def _from_localectl() -> LayoutName | None:
    out = _run(["localectl", "status"])
    return parse_localectl(out) if out else None


def parse_localectl(output: str) -> LayoutName | None:
    pattern = r"^\s*X11 (Layout|Variant|Options):\s*(\S+)\s*$"
    values = dict(re.findall(pattern, output, re.MULTILINE))
    if not values.get("Layout"):
        return None
    return _first(
        values["Layout"], values.get("Variant", ""), "localectl", values.get("Options", "")
    )


def _from_default_keyboard(path: Path) -> LayoutName | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return parse_default_keyboard(text)


def parse_default_keyboard(text: str) -> LayoutName | None:
    pattern = r'^\s*(XKBLAYOUT|XKBVARIANT|XKBOPTIONS)\s*=\s*"?([^"\n]*)"?'
    values = dict(re.findall(pattern, text, re.MULTILINE))
    if not values.get("XKBLAYOUT"):
        return None
    return _first(
        values["XKBLAYOUT"],
        values.get("XKBVARIANT", ""),
        "/etc/default/keyboard",
        values.get("XKBOPTIONS", ""),
    )


def compile_keymap(name: LayoutName) -> xkb.Keymap:
    try:
        # Our own detection already read the XKB_DEFAULT_* variables: no hidden defaults.
        context = xkb.Context(no_environment_names=True)
        return context.keymap_new_from_names(
            layout=name.layout, variant=name.variant or None, options=name.options or None
        )
    except xkb.XKBError as exc:
        raise LayoutError(
            f"cannot compile the XKB layout {name} ({exc}); is the xkb-data package installed "
            "and is the layout name right (see `localectl list-x11-keymap-layouts`)?"
        ) from None


class CharMap:
    """The reverse map of one keymap: which key stroke types each character."""

    def __init__(self, keymap: xkb.Keymap) -> None:
        self.keymap = keymap
        self._modifier_keys = self._find_modifier_keys()
        self._strokes: dict[str, KeyStroke] = {}
        self._build()

    @classmethod
    def for_layout(cls, name: LayoutName) -> CharMap:
        return cls(compile_keymap(name))

    def stroke(self, char: str) -> KeyStroke | None:
        if char in _CONTROL_CHARS:
            return KeyStroke(_CONTROL_CHARS[char])
        return self._strokes.get(char)

    def keysym_stroke(self, char: str, fallback_code: int) -> KeyStroke:
        """The stroke for a shortcut letter like the 'v' of Ctrl+V, physical key otherwise."""
        found = self.stroke(char)
        if found is not None and not found.modifiers:
            return found
        # Layouts without Latin letters (ru): applications match shortcuts on the key.
        return KeyStroke(fallback_code)

    def __contains__(self, char: str) -> bool:
        return self.stroke(char) is not None

    def _find_modifier_keys(self) -> dict[int, tuple[int, ...]]:
        """Modifier mask -> the keys whose pressing sets it (locking keys excluded)."""
        singles: dict[int, int] = {}
        order = list(_PREFERRED_MODIFIER_KEYS) + sorted(self._evdev_keys())
        for code in order:
            state = self.keymap.state_new()
            state.update_key(code + XKB_OFFSET, xkb.KeyDirection.XKB_KEY_DOWN)
            depressed = state.serialize_mods(xkb.StateComponent.XKB_STATE_MODS_DEPRESSED)
            state.update_key(code + XKB_OFFSET, xkb.KeyDirection.XKB_KEY_UP)
            if state.serialize_mods(xkb.StateComponent.XKB_STATE_MODS_EFFECTIVE):
                continue  # a lock or latch (Caps Lock, Num Lock): never used for typing
            if depressed and depressed not in singles:
                singles[depressed] = code
        combos: dict[int, tuple[int, ...]] = {0: ()}
        for mask, code in singles.items():
            combos.setdefault(mask, (code,))
        for mask_a, code_a in singles.items():
            for mask_b, code_b in singles.items():
                if code_a != code_b:
                    combos.setdefault(mask_a | mask_b, (code_a, code_b))
        return combos

    def _evdev_keys(self) -> Iterable[int]:
        for keycode in self.keymap:
            if keycode >= XKB_OFFSET:
                yield keycode - XKB_OFFSET

    def _build(self) -> None:
        best: dict[str, tuple[tuple[int, int, int, int], KeyStroke]] = {}
        for code in self._evdev_keys():
            keycode = code + XKB_OFFSET
            if code > _X11_MAX_EVDEV_CODE or self.keymap.num_layouts_for_key(keycode) < 1:
                continue
            for level in range(self.keymap.num_levels_for_key(keycode, 0)):
                syms = self.keymap.key_get_syms_by_level(keycode, 0, level)
                if len(syms) != 1:
                    continue
                char = xkb.keysym_to_string(syms[0])
                if not char or len(char) != 1 or not char.isprintable():
                    continue
                unusual = (
                    syms[0] in _KEYPAD_KEYSYMS or code in _KEYPAD_CODES or code > _LAST_COMMON_KEY
                )
                for mask in self.keymap.key_get_mods_for_level(keycode, 0, level):
                    mods = self._modifier_keys.get(mask)
                    if mods is None:
                        continue
                    stroke = KeyStroke(code, mods)
                    score = (int(unusual), len(mods), level, code)
                    if (char not in best or score < best[char][0]) and self._verify(stroke, char):
                        best[char] = (score, stroke)
        self._strokes = {char: stroke for char, (_, stroke) in best.items()}

    def _verify(self, stroke: KeyStroke, char: str) -> bool:
        """Replay the stroke through an xkbcommon state: does it really give ``char``?"""
        state = self.keymap.state_new()
        for mod in stroke.modifiers:
            state.update_key(mod + XKB_OFFSET, xkb.KeyDirection.XKB_KEY_DOWN)
        produced: str = state.key_get_string(stroke.code + XKB_OFFSET)
        return produced == char


def decode(keymap: xkb.Keymap, events: Iterable[tuple[int, int]]) -> str:
    """What a client using ``keymap`` reads from (evdev code, value) key events."""
    state = keymap.state_new()
    text: list[str] = []
    for code, value in events:
        keycode = code + XKB_OFFSET
        if value == 1:
            text.append(state.key_get_string(keycode))
            state.update_key(keycode, xkb.KeyDirection.XKB_KEY_DOWN)
        elif value == 0:
            state.update_key(keycode, xkb.KeyDirection.XKB_KEY_UP)
    return "".join(text).replace("\r", "\n")
