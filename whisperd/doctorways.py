"""``whisperctl doctor``'s advice on the two ways to start dictation (docs/keys.md):

- **The trigger key** (``[keys] trigger = "insert"``...): whisperd-keys reads every
  keyboard, so the user must be in the ``input`` group (what a keylogger needs too).
- **Desktop shortcuts** (``trigger = "none"``): the desktop runs ``whisperctl dictate``;
  whisperd-keys reads no keyboard and needs only /dev/uinput and the microphone.

Standard library only at import time, like whisperd/doctor/.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whisperd.doctor import Check

WAY = "way to dictate"
DOCS = "docs/keys.md 'Without the input group'"

# One line per desktop: where its shortcut goes (the exact lines are in docs/keys.md).
SHORTCUT_HINTS = {
    "gnome": "Settings > Keyboard > Custom Shortcuts: command `whisperctl dictate toggle`",
    "kde": "System Settings > Shortcuts > Add Command: `whisperctl dictate toggle`",
    "sway": "bindsym $mod+d exec whisperctl dictate start + bindsym --release $mod+d exec "
    "whisperctl dictate stop (hold to talk)",
    "hyprland": "bind = SUPER, D, exec, whisperctl dictate start + bindr = SUPER, D, exec, "
    "whisperctl dictate stop (hold to talk)",
    "i3": "bindsym $mod+d exec --no-startup-id whisperctl dictate start + bindsym --release "
    "$mod+d exec --no-startup-id whisperctl dictate stop (hold to talk)",
    "x11": 'xbindkeys: "whisperctl dictate toggle" on Mod4 + d',
}


def desktop(env: dict[str, str] | None = None) -> str:
    """The running desktop, as a key of SHORTCUT_HINTS; "" when unknown."""
    env = dict(os.environ) if env is None else env
    names = env.get("XDG_CURRENT_DESKTOP", "").lower().split(":")
    if env.get("HYPRLAND_INSTANCE_SIGNATURE") or "hyprland" in names:
        return "hyprland"
    if env.get("SWAYSOCK") or "sway" in names:
        return "sway"
    if env.get("I3SOCK") or "i3" in names:
        return "i3"
    for name in ("gnome", "kde"):
        if any(name in part for part in names):
            return name
    if env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return "x11"
    return ""


def shortcut_hint(env: dict[str, str] | None = None) -> str:
    found = desktop(env)
    if not found:
        return f"bind `whisperctl dictate toggle` to a shortcut of your desktop ({DOCS})"
    return f"on {found}: {SHORTCUT_HINTS[found]} ({DOCS})"


def uses_shortcuts(keys: dict[str, Any]) -> bool:
    return str(keys.get("trigger", "insert")).strip().lower() == "none"


def way_check(
    keys: dict[str, Any], keyboards: list[Check], env: dict[str, str] | None = None
) -> Check:
    """Which way this configuration uses, whether this session can do it, and the other."""
    from whisperd.doctor import Check, Status

    readable = any(c.status is Status.OK and c.name.startswith("keyboards") for c in keyboards)
    if uses_shortcuts(keys):
        return Check(
            Status.OK,
            WAY,
            'desktop shortcuts (trigger = "none"): no keyboard is read, the input group is '
            f"not needed; {shortcut_hint(env)}",
        )
    if readable:
        return Check(
            Status.OK,
            WAY,
            "the trigger key: whisperd-keys reads the keyboards (input group). Without the "
            'group: set [keys] trigger = "none" and use desktop shortcuts; '
            f"{shortcut_hint(env)}",
        )
    return Check(
        Status.WARN,
        WAY,
        "this session cannot read the keyboards, so the trigger key cannot work. "
        'Recommended here: set [keys] trigger = "none" and use desktop shortcuts; '
        f"{shortcut_hint(env)}. Or join the input group (`sudo usermod -aG input $USER`, "
        "log in again), which lets whisperd-keys, and any program of yours, read every key",
    )


def keyboard_checks(keys: dict[str, Any], checks: list[Check]) -> list[Check]:
    """The keyboard checks as they matter for this configuration: with shortcuts, a
    keyboard nobody may read is no problem."""
    from whisperd.doctor import Check, Status

    if not uses_shortcuts(keys):
        return checks
    return [
        Check(Status.SKIP, c.name, f'not needed with trigger = "none" ({c.message})')
        if c.status is not Status.OK
        else c
        for c in checks
    ]


def control_check(raw: dict[str, Any]) -> Check:
    """Whether whisperd-keys answers on its control socket (``whisperctl dictate``)."""
    from whisperd.doctor import Check, Status

    name = "whisperd-keys (control socket)"
    try:
        from whisperd.config import control_socket_path
        from whisperd.control.client import ControlFailed, KeysNotRunning, status

        path = control_socket_path(None, raw)
        event = status(path, timeout=3.0)
    except KeysNotRunning:
        return Check(
            Status.WARN,
            name,
            "whisperd-keys is not running: `systemctl --user enable --now whisperd-keys`",
        )
    except (ControlFailed, OSError) as exc:
        return Check(Status.WARN, name, f"whisperd-keys does not answer: {exc}")
    return Check(Status.OK, name, f"answers on {path} (dictation {event.get('state')})")
