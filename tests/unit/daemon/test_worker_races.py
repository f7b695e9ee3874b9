"""What the worker thread hands to the event loop, and what it changes while the loop
goes on: a cancel handled in between wins, and an unload never forgets a load that a
request started while the model was being released."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tests.unit.daemon.fakes import FakeEngine
from whisperd import modelstatus
from whisperd.config import DaemonConfig
from whisperd.daemon.scheduler import Scheduler
from whisperd.daemon.state import DaemonState
from whisperd.protocol import PcmFormat, Reply, SegmentReply, Transcribe


def nothing(*_: Any) -> None:
    pass


def scheduler_with(engine: FakeEngine) -> Scheduler:
    return Scheduler(DaemonConfig(), DaemonState(False), nothing, nothing, engine)


def test_a_segment_queued_before_a_cancel_is_not_sent_after_it() -> None:
    async def test() -> None:
        scheduler = scheduler_with(FakeEngine())
        replies: list[Reply] = []
        request = Transcribe("r", "pcm", PcmFormat("s16le", 16000, 1), {})
        job = scheduler.new_job(request, replies.append, object())
        send_segment = scheduler.segment_sender(job)
        # The worker decoded a segment and handed it to the loop; before the loop runs
        # that, it handles the client's cancel (connection.cancel: the flag, then the
        # "cancelled" error). Nothing may follow the error.
        send_segment({"start": 0.0, "end": 1.0, "text": "a word"})
        job.cancelled = True
        await asyncio.sleep(0.01)
        assert not [r for r in replies if isinstance(r, SegmentReply)]
        scheduler.shutdown()

    asyncio.run(test())


class SlowToRelease(FakeEngine):
    """Forgets the model at once, then takes a while to give its memory back (as
    pipeline.unload_model releases the decoder process and trims the heap)."""

    def __init__(self) -> None:
        super().__init__()
        self.releasing = threading.Event()
        self.released = threading.Event()

    def unload(self) -> bool:
        was = super().unload()
        self.releasing.set()
        self.released.wait(10)
        return was


def test_an_unload_keeps_a_load_started_while_it_released_the_model() -> None:
    async def test() -> None:
        engine = SlowToRelease()
        scheduler = scheduler_with(engine)
        statuses: list[str] = []
        scheduler.set_status = statuses.append  # type: ignore[method-assign]
        await scheduler.ensure_loaded()
        unloading = asyncio.ensure_future(scheduler.unload("u"))
        await asyncio.get_running_loop().run_in_executor(None, engine.releasing.wait, 10)
        scheduler.warm_up()  # a request came: the model is gone, so it loads again
        new_load = scheduler.loading
        assert new_load is not None and scheduler.status()["loading"]
        engine.released.set()
        await unloading
        assert scheduler.loading is new_load
        assert scheduler.status()["loading"] or engine.loaded
        await scheduler.ensure_loaded()
        assert engine.loaded
        # After the new load's "loading", only its own end: never "not loaded" meanwhile.
        last_loading = max(i for i, text in enumerate(statuses) if text == modelstatus.LOADING)
        assert statuses[last_loading + 1 :] == [scheduler.idle_status()], statuses
        scheduler.shutdown()

    asyncio.run(test())


def test_a_model_the_status_calls_loaded_always_has_its_name(monkeypatch: Any) -> None:
    """The engine loads on the worker while a status request reads it on the loop: after
    each of its fields is set, it is never loaded without its model's name."""
    from whisperd.engine import Engine, threads

    seen: list[tuple[str, Any]] = []

    class Watched(Engine):
        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if "_model" in self.__dict__ and self.loaded:  # what a status reads now
                seen.append((name, self.describe()["model"]))

    monkeypatch.setattr(threads, "load_whisper", lambda *args: (object(), 2))
    engine = Watched(DaemonConfig())
    engine.load()
    assert engine.loaded and seen
    assert all(model for _, model in seen), seen
