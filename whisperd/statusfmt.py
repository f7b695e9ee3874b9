"""Dictation status events as lines for bars and scripts (``whisperctl status --follow``).

Pure functions, standard library only (whisperctl imports this). The input is a status
event as whisperd-keys sends it (notes in docs/keys.md "Status for bars"), checked field by
field first: whisperd-keys runs as the same user, but what comes over a socket is read as
hostile all the same, and a bar must never be handed a broken line.

Formats:
- ``json``: the checked event, one object per line.
- ``waybar``: Waybar's custom-module JSON, ``text``, ``tooltip``, ``class`` and ``alt``;
  ``class`` and ``alt`` are the state, so a style sheet can colour it and ``format-icons``
  can pick an icon for it. Waybar reads text and tooltip as Pango markup (its ``escape``
  option is off by default), so ``& < >`` are escaped here.
- ``text``: one plain line (i3blocks, polybar).

Besides whisperd-keys's states, ``stopped`` says that whisperd-keys is not running (the
follower prints it once per outage while it waits to reconnect).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

STOPPED = "stopped"
KNOWN_STATES = ("idle", "recording", "transcribing", "typing", "error", STOPPED)
# A newer whisperd-keys may add states: passed on if they look like one (a CSS class name).
STATE_PATTERN = re.compile(r"[a-z][a-z_]{0,23}")
DAEMON_VALUES = ("running", "stopped", "unknown")
MODEL_VALUES = ("loaded", "unloaded", "unknown")
MAX_REASON = 200
MAX_TEXT = 4000  # the event's text as kept in json (a bar shows far less)
BAR_TEXT = 40  # how much of the dictated text the one-line format shows, at most
FORMATS = ("json", "waybar", "text")


def one_line(value: str, limit: int) -> str:
    """Whitespace (new lines too) made single spaces, control characters dropped, cut."""
    cleaned = "".join(ch for ch in value if ch.isprintable() or ch.isspace())
    line = " ".join(cleaned.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def check_event(event: Any) -> dict[str, Any] | None:
    """The status event with only well-formed fields, or None when it is not one."""
    if not isinstance(event, dict) or event.get("type") != "status":
        return None
    state = event.get("state")
    if not isinstance(state, str) or not STATE_PATTERN.fullmatch(state):
        return None
    checked: dict[str, Any] = {"type": "status", "state": state}
    since = _number(event.get("since"))
    if since is not None:
        checked["since"] = since
    elapsed = _number(event.get("elapsed"))
    if elapsed is not None and state == "recording":
        checked["elapsed"] = round(elapsed, 1)
    reason = event.get("reason")
    if isinstance(reason, str) and state == "error":
        checked["reason"] = one_line(reason, MAX_REASON)
    text = event.get("text")
    if isinstance(text, str):
        checked["text"] = text[:MAX_TEXT]
    daemon, model = event.get("daemon"), event.get("model")
    checked["daemon"] = daemon if daemon in DAEMON_VALUES else "unknown"
    checked["model"] = model if model in MODEL_VALUES else "unknown"
    return checked


def stopped_event(now: float) -> dict[str, Any]:
    """What the follower prints while whisperd-keys is not running."""
    return {
        "type": "status",
        "state": STOPPED,
        "since": now,
        "daemon": "unknown",
        "model": "unknown",
    }


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def describe_state(event: dict[str, Any]) -> str:
    """The state in words, for the text line and the tooltip."""
    state = event["state"]
    if state == "recording":
        return f"recording {clock(event.get('elapsed', 0.0))}"
    if state == "error":
        reason = event.get("reason")
        return f"error: {reason}" if reason else "error"
    if state == STOPPED:
        return "whisperd-keys is not running"
    return str(state)


def describe_daemon(event: dict[str, Any]) -> str:
    daemon, model = event["daemon"], event["model"]
    if daemon == "running":
        model_words = {"loaded": "model loaded", "unloaded": "model not loaded"}
        return f"whisperd running, {model_words.get(model, 'model state unknown')}"
    if daemon == "stopped":
        return "whisperd stopped (starts on the next dictation)"
    return "whisperd: state unknown"


def dictated_tail(text: str, limit: int) -> str:
    """The end of the dictated text: what was said last is what the user looks for."""
    line = one_line(text, len(text) + 1)
    return line if len(line) <= limit else "…" + line[-(limit - 1) :]


def format_json(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def format_text(event: dict[str, Any]) -> str:
    line = describe_state(event)
    text = event.get("text")
    if isinstance(text, str) and text.strip():
        line += ": " + dictated_tail(text, BAR_TEXT)
    return line


def waybar_label(event: dict[str, Any]) -> str:
    """Short, for the bar itself; icons come from ``format-icons`` keyed by ``alt``."""
    state = event["state"]
    if state == "recording":
        return clock(event.get("elapsed", 0.0))
    if state in ("transcribing", "typing"):
        return "…"
    if state == "error":
        return "error"
    if state == STOPPED:
        return "off"
    return ""


def markup(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_waybar(event: dict[str, Any]) -> str:
    tooltip = [f"Dictation: {describe_state(event)}"]
    text = event.get("text")
    if isinstance(text, str) and text.strip():
        tooltip.append(dictated_tail(text, 200))
    if event["state"] != STOPPED:
        tooltip.append(describe_daemon(event))
    payload = {
        "text": markup(waybar_label(event)),
        "tooltip": markup("\n".join(tooltip)),
        "class": event["state"],
        "alt": event["state"],
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def format_event(event: dict[str, Any], fmt: str) -> str:
    """One output line (no newline) for a checked event."""
    if fmt == "waybar":
        return format_waybar(event)
    if fmt == "text":
        return format_text(event)
    return format_json(event)
