"""Dictation latency, driven at whisperd-keys' own interfaces.

The real ``DictationService`` runs with:

- its ``AudioRecorder`` interface implemented by ``RealtimeRecorder``: each capture is a
  real ``QueueCapture`` fed with the utterance in 20 ms blocks at real-time pace (the block
  size of the PortAudio recorder), so the session streams to whisperd while "the user
  speaks";
- its ``VirtualKeyboard`` as the ``RecordingKeyboard`` double (time-stamped), behind the
  real ``Typer`` with the US layout and the default ``type_delay``;
- the real client (``whisperd.client.Client``) and a real whisperd on a temporary socket.

The trigger key goes down when the first block is due and up right after the last one was
recorded. Measured per run, from the key release:

- ``handoff``: the whole text handed to the typing layer (``Typer.type_text`` called) --
  the figure the targets are about;
- ``typed``: the last key event written to the virtual keyboard (``type_delay`` per key
  event is added on top, by design: compositors drop faster input);
- the parts: ``drain`` (release to ``end`` sent: the last blocks read and sent), ``reply``
  (``end`` to the result, of which the daemon's own ``total``), the rest is the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from evdev import ecodes

from whisperd.client import Client as RealClient
from whisperd.keys.audio import QueueCapture
from whisperd.keys.config import KeysConfig
from whisperd.keys.layout import CharMap, LayoutName
from whisperd.keys.service import DictationService
from whisperd.keys.trigger import KeyEvent, Mode, TriggerMachine
from whisperd.keys.typer import Typer
from whisperd.keys.virtual import RecordingKeyboard

DEVICE = "/dev/input/event-bench"
BLOCK_SECONDS = 0.02


class RealtimeRecorder:
    """AudioRecorder: plays the loaded PCM into each capture at real-time pace."""

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.pcm = b""
        self.finished = threading.Event()
        self.started_at = 0.0

    def load(self, pcm: bytes) -> None:
        self.pcm = pcm

    def begin(self) -> QueueCapture:
        capture = QueueCapture(self.sample_rate)
        self.finished.clear()
        self.started_at = time.monotonic()
        threading.Thread(
            target=self._feed,
            args=(capture, self.pcm, self.started_at),
            name="bench-microphone",
            daemon=True,
        ).start()
        return capture

    def _feed(self, capture: QueueCapture, pcm: bytes, t0: float) -> None:
        block = int(self.sample_rate * BLOCK_SECONDS) * 2
        for index, offset in enumerate(range(0, len(pcm), block)):
            due = t0 + (index + 1) * BLOCK_SECONDS  # a block exists once it was recorded
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if capture.stopped:
                break
            capture.push(pcm[offset : offset + block])
        self.finished.set()

    def close(self) -> None:
        pass


class IdleSource:
    """KeyboardSource double: nothing happens; ``poll`` blocks like select() would."""

    def __init__(self) -> None:
        self.closed = False

    def poll(self, timeout: float) -> list[Any]:
        time.sleep(timeout)
        return []

    def is_grabbed(self, device: str) -> bool:
        return True

    def devices(self) -> list[str]:
        return [DEVICE]

    def close(self) -> None:
        self.closed = True


class TimedKeyboard(RecordingKeyboard):
    def __init__(self) -> None:
        super().__init__()
        self.last_write = 0.0

    def _write(self, code: int, value: int) -> None:
        super()._write(code, value)
        self.last_write = time.monotonic()


class TimedTyper(Typer):
    handoff = 0.0
    done = 0.0
    text = ""

    def type_text(
        self,
        text: str,
        cancel: threading.Event | None = None,
        interrupt: Callable[[], bool] | None = None,
    ) -> Any:
        self.handoff = time.monotonic()
        self.text = text
        report = super().type_text(text, cancel, interrupt)
        self.done = time.monotonic()
        return report


class SpyStream:
    def __init__(self, stream: Any, record: dict[str, Any]) -> None:
        self.stream = stream
        self.record = record

    def send(self, pcm: bytes) -> None:
        self.stream.send(pcm)

    def finish(self, on_segment: Callable[[dict[str, Any]], None] | None = None) -> Any:
        self.record["end_sent"] = time.monotonic()
        result = self.stream.finish(on_segment)
        self.record["result_at"] = time.monotonic()
        self.record["result"] = result
        return result

    def cancel(self) -> None:
        self.stream.cancel()


class SpyClient:
    def __init__(self, client: Any, record: dict[str, Any]) -> None:
        self.client = client
        self.record = record

    def start_stream(self, **kwargs: Any) -> SpyStream:
        return SpyStream(self.client.start_stream(**kwargs), self.record)

    def start_live(self, on_commit: Callable[[dict[str, Any]], None], **kwargs: Any) -> SpyStream:
        return SpyStream(self.client.start_live(on_commit, **kwargs), self.record)

    def close(self) -> None:
        self.client.close()


class DictationBench:
    def __init__(self, socket_path: str, type_delay: float | None = None) -> None:
        # Type-at-release: the whole text is handed over once (bench/live_keys.py measures
        # live typing).
        self.config = KeysConfig(socket_path=socket_path, live=False)
        if type_delay is not None:
            self.config.type_delay = type_delay
        self.recorder = RealtimeRecorder(self.config.sample_rate)
        self.keyboard = TimedKeyboard()
        self.typer = TimedTyper(
            self.keyboard, CharMap.for_layout(LayoutName("us")), delay=self.config.type_delay
        )
        self.record: dict[str, Any] = {}

        def factory() -> SpyClient:
            real = RealClient.connect(
                socket_path=socket_path, timeout=self.config.timeout, autostart=False
            )
            return SpyClient(real, self.record)

        self.service = DictationService(
            TriggerMachine(combo=(ecodes.KEY_INSERT,), mode=Mode.HOLD, max_recording=300),
            IdleSource(),
            self.recorder,
            self.keyboard,
            self.typer,
            factory,
            self.config,
        )

    def run(self, pcm: bytes) -> dict[str, Any]:
        self.record.clear()
        self.typer.handoff = self.typer.done = 0.0
        self.recorder.load(pcm)
        down = time.monotonic()
        self.service.step([KeyEvent(DEVICE, ecodes.KEY_INSERT, 1, down)])
        self.recorder.finished.wait()
        release = time.monotonic()
        self.service.step([KeyEvent(DEVICE, ecodes.KEY_INSERT, 0, release)])
        session = self.service.sessions[-1]
        session.join(600)
        if session.is_alive() or not self.typer.handoff:
            raise RuntimeError(f"dictation produced no text: {self.record.get('result')}")
        result = self.record.get("result", {})
        timings = result.get("timings", {})
        return {
            "handoff": self.typer.handoff - release,
            "typed": self.keyboard.last_write - release,
            "drain": self.record["end_sent"] - release,
            "reply": self.record["result_at"] - self.record["end_sent"],
            "daemon_total": timings.get("total"),
            "daemon_decode": timings.get("decode"),
            "typing": self.typer.done - self.typer.handoff,
            "chars": len(self.typer.text),
            "recorded": (release - down),
            "draft": 1.0 if result.get("draft") else 0.0,
            "text": self.typer.text,
        }

    def close(self) -> None:
        self.service.stop_event.set()
        self.service.shutdown()
