"""The status formats of ``whisperctl status --follow``: golden lines for every state in
every format, and what a malformed event becomes.

Set WHISPERD_UPDATE_GOLDEN=1 to rewrite tests/unit/data/status_*.golden after an intended
change, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from whisperd.statusfmt import FORMATS, check_event, format_event, stopped_event

DATA = Path(__file__).parent / "data"
EVENTS = [json.loads(line) for line in (DATA / "status_events.jsonl").read_text().splitlines()]


def render(fmt: str) -> str:
    lines = []
    for event in EVENTS:
        checked = check_event(event)
        assert checked is not None
        lines.append(format_event(checked, fmt))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(fmt: str) -> None:
    got = render(fmt)
    golden = DATA / f"status_{fmt}.golden"
    if os.environ.get("WHISPERD_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(got)
    assert got == golden.read_text()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_line_is_one_line(fmt: str) -> None:
    assert all("\n" not in line for line in render(fmt).splitlines())
    assert len(render(fmt).splitlines()) == len(EVENTS)


def test_waybar_has_the_four_fields_and_class_and_alt_are_the_state() -> None:
    for line in render("waybar").splitlines():
        payload = json.loads(line)
        assert set(payload) == {"text", "tooltip", "class", "alt"}
        assert payload["class"] == payload["alt"]
    states = [json.loads(line)["alt"] for line in render("waybar").splitlines()]
    assert states[:7] == [
        "idle",
        "recording",
        "recording",
        "transcribing",
        "typing",
        "error",
        "stopped",
    ]


def test_waybar_escapes_pango_markup() -> None:
    event = check_event(EVENTS[2])
    assert event is not None
    tooltip = json.loads(format_event(event, "waybar"))["tooltip"]
    assert "<b>" not in tooltip and "&lt;b&gt;&amp;&lt;/b&gt;" in tooltip


def test_json_keeps_the_event_and_drops_what_is_malformed() -> None:
    assert check_event(EVENTS[0]) == EVENTS[0]
    odd = check_event(EVENTS[8])  # unknown state passed on; bad daemon/model unknown
    assert odd == {
        "type": "status",
        "state": "listening",
        "since": 1764600100.0,
        "daemon": "unknown",
        "model": "unknown",
    }
    assert check_event(EVENTS[9]) == {
        "type": "status",
        "state": "recording",
        "daemon": "running",
        "model": "loaded",
    }


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "status",
        {"type": "ok", "state": "idle"},
        {"type": "status"},
        {"type": "status", "state": ""},
        {"type": "status", "state": "Idle"},
        {"type": "status", "state": "idle; rm -rf"},
        {"type": "status", "state": "x" * 100},
        {"type": "status", "state": 3},
    ],
)
def test_not_a_status_event(event: object) -> None:
    assert check_event(event) is None


def test_stopped_event_is_a_valid_event() -> None:
    event = stopped_event(12.0)
    assert check_event(event) == event
    assert format_event(event, "text") == "whisperd-keys is not running"
