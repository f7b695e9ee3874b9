"""Test doubles for whisperd-keys: recorded evdev logs, a fake recorder, a fake daemon."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evdev import ecodes

from whisperd.keys.audio import QueueCapture
from whisperd.keys.trigger import DeviceRemoved, InputEvent, KeyEvent

DATA = Path(__file__).parent / "data"


def parse_evlog(text: str) -> tuple[dict[str, str], list[tuple[float, InputEvent | None]]]:
    """An event log: ``# key=value`` headers, then ``time device TYPE CODE value`` lines
    as evtest prints them (EV_SYN and EV_MSC included), ``time device REMOVED`` for an
    unplug and ``time TICK`` for the clock passing without events."""
    headers: dict[str, str] = {}
    events: list[tuple[float, InputEvent | None]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            for item in line[1:].split():
                if "=" in item:
                    key, value = item.split("=", 1)
                    headers[key] = value
            continue
        parts = line.split()
        when = float(parts[0])
        if parts[1] == "TICK":
            events.append((when, None))
        elif parts[2] == "REMOVED":
            events.append((when, DeviceRemoved(parts[1], when)))
        elif parts[2] == "EV_KEY":
            events.append((when, KeyEvent(parts[1], ecodes.ecodes[parts[3]], int(parts[4]), when)))
        # EV_SYN / EV_MSC lines are read past, as the evdev source does.
    return headers, events


class ReplaySource:
    """KeyboardSource double: hands out queued events; every device counts as grabbed."""

    def __init__(self, grabbed: bool = True) -> None:
        self.queue: list[InputEvent] = []
        self.grabbed = grabbed
        self.closed = False

    def poll(self, timeout: float) -> list[InputEvent]:
        events, self.queue = self.queue, []
        return events

    def is_grabbed(self, device: str) -> bool:
        return self.grabbed

    def devices(self) -> list[str]:
        return ["/dev/input/event3"]

    def close(self) -> None:
        self.closed = True


class FakeRecorder:
    """AudioRecorder double: each capture gets ``chunks`` of PCM at once."""

    def __init__(self, chunks: list[bytes], sample_rate: int = 16000) -> None:
        self.chunks = chunks
        self.sample_rate = sample_rate
        self.captures: list[QueueCapture] = []
        self.closed = False

    def begin(self) -> QueueCapture:
        capture = QueueCapture(self.sample_rate)
        for chunk in self.chunks:
            capture.push(chunk)
        self.captures.append(capture)
        return capture

    def close(self) -> None:
        self.closed = True


class FakeStream:
    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.sent: list[bytes] = []
        self.finished = False
        self.cancelled = False

    def send(self, pcm: bytes) -> None:
        self.sent.append(pcm)

    def finish(self, on_segment: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        self.client.finish_gate.wait(5)
        self.finished = True
        return dict(self.client.result)

    def cancel(self) -> None:
        self.cancelled = True


class FakeLiveStream(FakeStream):
    """A live stream: ``client.pieces[i]`` is committed when the i-th chunk is sent (as
    if the speaker had paused there), the rest of the text as the final piece at finish."""

    def __init__(self, client: FakeClient, on_commit: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(client)
        self.on_commit = on_commit
        self.seq = 0

    def _commit(self, text: str, final: bool) -> None:
        self.on_commit({"type": "commit", "seq": self.seq, "text": text, "final": final})
        self.seq += 1

    def send(self, pcm: bytes) -> None:
        super().send(pcm)
        if not self.cancelled and self.seq < len(self.client.pieces):
            self.client.piece_gate.wait(5)
            self._commit(self.client.pieces[self.seq], False)

    def finish(self, on_segment: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        self.client.finish_gate.wait(5)
        if self.cancelled:
            raise RuntimeError("cancelled")
        while self.seq < len(self.client.pieces):
            self._commit(self.client.pieces[self.seq], False)
        self._commit(self.client.final, True)
        self.finished = True
        return dict(self.client.result)


class FakeClient:
    """The daemon client double, implementing the contract of whisperd.client.

    Live: ``pieces`` are committed during the stream, ``final`` at the end; the result's
    text is the pieces joined by spaces, as whisperd sends it. Without ``pieces`` the
    whole text is the final piece."""

    def __init__(
        self,
        text: str = "Hello world.",
        skipped: str | None = None,
        pieces: list[str] | None = None,
        final: str | None = None,
    ) -> None:
        self.pieces = list(pieces or [])
        self.final = (final if final is not None else "") if pieces else text
        if pieces:
            text = " ".join(t for t in [*self.pieces, self.final] if t)
        self.piece_gate = threading.Event()
        self.piece_gate.set()
        self.result: dict[str, Any] = {
            "text": text,
            "segments": [{"start": 0.0, "end": 1.0, "text": text}],
            "language": "en",
            "duration": 1.0,
            "skipped": skipped,
            "timings": {},
            "device": "cpu",
            "model": "tiny.en",
        }
        self.streams: list[FakeStream] = []
        self.stream_args: list[dict[str, Any]] = []
        self.closed = 0
        self.finish_gate = threading.Event()
        self.finish_gate.set()

    def start_stream(
        self,
        sample_rate: int = 16000,
        channels: int = 1,
        encoding: str = "s16le",
        options: dict[str, Any] | None = None,
    ) -> FakeStream:
        self.stream_args.append(
            {
                "sample_rate": sample_rate,
                "channels": channels,
                "encoding": encoding,
                "options": options,
            }
        )
        stream = FakeStream(self)
        self.streams.append(stream)
        return stream

    def start_live(
        self,
        on_commit: Callable[[dict[str, Any]], None],
        sample_rate: int = 16000,
        channels: int = 1,
        encoding: str = "s16le",
        options: dict[str, Any] | None = None,
    ) -> FakeLiveStream:
        self.start_stream(sample_rate, channels, encoding, {**(options or {}), "live": True})
        stream = FakeLiveStream(self, on_commit)
        self.streams[-1] = stream
        return stream

    def close(self) -> None:
        self.closed += 1
