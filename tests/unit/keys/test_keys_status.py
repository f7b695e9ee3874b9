"""Golden tests: dictation event sequences through the status machine.

Each ``data/status/NAME.events`` holds ``# key=value`` headers and ``time event [args]``
lines; ``NAME.golden`` holds every Status published, as followers asking for the text
would receive it. Set WHISPERD_UPDATE_GOLDEN=1 to rewrite the .golden files after an
intended change, then review the diff.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.unit.keys.keys_fakes import DATA
from whisperd.keys.status import (
    Cancelled,
    DaemonSeen,
    Event,
    Failed,
    PieceCommitted,
    RecordingStarted,
    RecordingStopped,
    State,
    Status,
    StatusMachine,
    Tick,
    TypingDone,
    TypingStarted,
)

STATUS_DATA = DATA / "status"
SEQUENCES = sorted(p.stem for p in STATUS_DATA.glob("*.events"))
KNOWN = {"running": True, "loaded": True, "stopped": False, "unloaded": False, "unknown": None}


def parse_event(words: list[str], rest: str) -> Event:
    simple: dict[str, Event] = {
        "start": RecordingStarted(),
        "stop": RecordingStopped(),
        "typing": TypingStarted(),
        "done": TypingDone(),
        "cancel": Cancelled(),
        "tick": Tick(),
    }
    name = words[0]
    if name in simple:
        return simple[name]
    if name == "piece":
        return PieceCommitted(rest)
    if name == "fail":
        return Failed(rest)
    assert name == "daemon", f"unknown event {name!r}"
    return DaemonSeen(KNOWN[words[1]], KNOWN[words[2]])


def parse_events(text: str) -> tuple[dict[str, str], list[tuple[float, Event]]]:
    headers: dict[str, str] = {}
    events: list[tuple[float, Event]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            for item in line[1:].split():
                if "=" in item:
                    key, value = item.split("=", 1)
                    headers[key] = value
            continue
        if not line.strip():
            continue
        when, _, body = line.partition(" ")
        name, _, rest = body.partition(" ")
        events.append((float(when), parse_event(body.split(), rest)))
    return headers, events


def replay(name: str) -> list[Status]:
    headers, events = parse_events((STATUS_DATA / f"{name}.events").read_text())
    machine = StatusMachine(now=0.0, keep_text=headers.get("keep_text") == "true")
    published: list[Status] = []
    for when, event in events:
        status = machine.apply(event, when)
        if status is not None:
            published.append(status)
    return published


def render(statuses: list[Status]) -> str:
    return "".join(
        json.dumps(s.to_json(with_text=True), ensure_ascii=False) + "\n" for s in statuses
    )


@pytest.mark.parametrize("name", SEQUENCES)
def test_golden(name: str) -> None:
    got = render(replay(name))
    golden = STATUS_DATA / f"{name}.golden"
    if os.environ.get("WHISPERD_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(got)
    assert got == golden.read_text()


def states(name: str) -> list[str]:
    return [str(status.state) for status in replay(name)]


def test_a_dictation_goes_through_every_state_and_back() -> None:
    seen = states("basic")
    # the first two: the daemon seen at start (idle), then recording and its updates
    assert [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]] == [
        "idle",
        "recording",
        "transcribing",
        "typing",
        "idle",
    ]


def test_each_published_status_is_newer_than_the_last_and_snapshots_say_so() -> None:
    """The control server orders a follower's first status against changes still to be
    broadcast by these versions (test_server.py)."""
    machine = StatusMachine(0.0)
    published = [machine.apply(event, 1.0) for event in (RecordingStarted(), Tick())]
    assert machine.snapshot(1.5).version == 1  # elapsed as of now, the same status
    published += [machine.apply(Tick(), 2.0)]  # a second of recording: published
    published += [machine.apply(RecordingStopped(), 2.5), machine.apply(RecordingStopped(), 3)]
    assert [s.version if s else None for s in published] == [1, None, 2, 3, None]
    assert machine.snapshot(4.0).version == 3
    assert "version" not in machine.snapshot(4.0).to_json(with_text=True)


def test_elapsed_is_published_once_a_second_while_recording() -> None:
    recording = [s for s in replay("basic") if s.state is State.RECORDING]
    assert [s.elapsed for s in recording] == [0.0, 1.0, 2.0]
    assert {s.since for s in recording} == {1.0}


def test_text_only_when_kept_and_only_while_recording() -> None:
    with_text = replay("live_text")
    assert [s.text for s in with_text if s.text] == ["hello there.", "hello there. How are you"]
    assert all(s.text is None for s in with_text if s.state is not State.RECORDING)
    without = replay("live_no_text")
    assert all(s.text is None for s in without)
    assert all("text" not in s.to_json(with_text=True) for s in without)


def test_text_is_left_out_unless_the_follower_asked() -> None:
    status = next(s for s in replay("live_text") if s.text)
    assert "text" in status.to_json(with_text=True)
    assert "text" not in status.to_json()


def test_an_error_carries_a_short_reason_and_expires_after_ten_seconds() -> None:
    published = replay("errors")
    first = published[2]
    assert first.state is State.ERROR and first.reason == "whisperd is not available (unavailable)"
    assert published[3].state is State.IDLE and published[3].since == 12.0
    long_one = next(s for s in published if s.reason and len(s.reason) > 40)
    assert len(long_one.reason or "") <= 80 and "\n" not in (long_one.reason or "")
    assert all(s.reason is None for s in published if s.state is not State.ERROR)


def test_every_event_carries_daemon_and_model() -> None:
    for name in SEQUENCES:
        for status in replay(name):
            event = status.to_json()
            assert event["type"] == "status"
            assert event["daemon"] in ("running", "stopped", "unknown")
            assert event["model"] in ("loaded", "unloaded", "unknown")


def test_a_stopped_daemon_has_no_model_loaded() -> None:
    stopped = [s for s in replay("daemon") if str(s.daemon) == "stopped"]
    assert stopped and all(str(s.model) == "unloaded" for s in stopped)


def test_snapshot_gives_elapsed_as_of_now() -> None:
    machine = StatusMachine(now=100.0)
    machine.apply(RecordingStarted(), 100.0)
    assert machine.snapshot(103.25).elapsed == 3.2
    assert machine.snapshot(103.25).to_json()["since"] == 100.0
    machine.apply(RecordingStopped(), 104.0)
    assert machine.snapshot(200.0).elapsed is None
