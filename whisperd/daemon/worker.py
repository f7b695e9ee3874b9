"""The worker thread that owns the engine, and the model on it: load, unload, status.

The event loop never runs the model: everything that touches it is submitted here, one
thing at a time, in order. The scheduler (scheduler.py) builds on this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from whisperd import modelstatus
from whisperd.daemon import pipeline
from whisperd.daemon.listener import notify
from whisperd.protocol import ErrorCode, Loaded, ProtocolError, Reply, RequestId, Unloaded

if TYPE_CHECKING:
    from whisperd.config import DaemonConfig

log = logging.getLogger("whisperd")
T = TypeVar("T")


class ModelHost(pipeline.Transcriber, Protocol):
    """The engine as the scheduler uses it (whisperd.engine.Engine; a fake in tests)."""

    @property
    def loaded(self) -> bool: ...

    @property
    def load_seconds(self) -> float | None: ...

    def unload(self) -> bool: ...

    def describe(self) -> dict[str, Any]: ...


def _consume_error(future: asyncio.Future[float]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("model load failed: %s", future.exception())


def real_engine(config: DaemonConfig) -> ModelHost:
    from whisperd.engine import Engine

    return Engine(config)


class ModelWorker:
    def __init__(
        self, engine: ModelHost, on_busy: Callable[[], None], on_settled: Callable[[], None]
    ) -> None:
        self.engine = engine
        # One worker thread: one model, requests in arrival order, the event loop stays free.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisperd-engine")
        self.busy = 0  # jobs and loads submitted to the worker and not finished
        self.loading: asyncio.Future[float] | None = None
        self.requests_served = 0
        self.background: set[asyncio.Task[bool]] = set()  # unloads that answered early
        # Clear while the worker thread runs something (read at exit, after the loop).
        self.worker_idle = threading.Event()
        self.worker_idle.set()
        self._on_busy = on_busy  # the lifecycle stops its idle timer
        self._on_settled = on_settled  # ... and may arm it again

    def idle_status(self) -> str:
        """The status line of the idle daemon (systemd's StatusText): whisperd-keys reads
        whether the model is loaded there (whisperd/modelstatus.py)."""
        model = self.engine.describe()
        return modelstatus.idle_text(
            self.engine.loaded, str(model["model"]), str(model["device"]), self.requests_served
        )

    def set_status(self, text: str) -> None:
        notify(f"STATUS={text}")

    # -- the worker

    async def on_worker(self, function: Callable[..., T], *args: Any) -> T:
        self.busy += 1
        self._on_busy()

        def on_thread() -> T:
            self.worker_idle.clear()
            try:
                return function(*args)
            finally:
                self.worker_idle.set()

        try:
            return await asyncio.get_running_loop().run_in_executor(self.worker, on_thread)
        finally:
            self.busy -= 1
            self._on_settled()

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Busy while waiting on something other than the worker (a remote engine's
        answer): the idle timer stays off as it does while the worker runs."""
        self.busy += 1
        self._on_busy()
        try:
            yield
        finally:
            self.busy -= 1
            self._on_settled()

    def shutdown(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)

    # -- the model

    def warm_up(self) -> None:
        """Load the model in the background if it is not loaded or loading."""
        if self.engine.loaded or (self.loading is not None and not self.loading.done()):
            return
        self.loading = asyncio.ensure_future(self._load())
        self.loading.add_done_callback(_consume_error)  # errors surface per request

    async def _load(self) -> float:
        self.set_status(modelstatus.LOADING)
        try:
            return await self.on_worker(self.engine.load)
        finally:
            self.set_status(self.idle_status())

    async def ensure_loaded(self) -> float:
        """Wait for the model; requests arriving during a load wait for that same load."""
        from whisperd.engine import ModelNotFound

        if self.engine.loaded:
            return 0.0
        self.warm_up()
        assert self.loading is not None
        started = time.monotonic()
        try:
            await asyncio.shield(self.loading)
        except ModelNotFound as exc:
            self.loading = None
            raise ProtocolError(ErrorCode.MODEL_UNAVAILABLE, str(exc)) from None
        return time.monotonic() - started

    async def load(self, request_id: RequestId) -> Reply:
        try:
            waited = await self.ensure_loaded()
        except ProtocolError as exc:
            exc.request_id = request_id
            return exc.to_reply()
        seconds = round(self.engine.load_seconds or 0.0, 3)
        return Loaded(request_id, seconds, round(waited, 3), self.engine.describe())

    async def unload(self, request_id: RequestId) -> Reply:
        """Drop the model. While the worker runs something (a transcription, a load) the
        answer comes at once with ``pending``: the model goes as soon as the worker is
        free (a request sent meanwhile may load it again)."""
        loading = self.loading is not None and not self.loading.done()
        if self.busy or loading:
            task = asyncio.ensure_future(self._unload())
            self.background.add(task)
            task.add_done_callback(self.background.discard)
            return Unloaded(request_id, self.engine.loaded or loading, True)
        return Unloaded(request_id, await self._unload(), False)

    async def _unload(self) -> bool:
        loading = self.loading
        if loading is not None and not loading.done():
            await asyncio.wait([loading])
        was_loaded = await self.on_worker(pipeline.unload_model, self.engine)
        # The model is forgotten before its memory is released: a request meanwhile
        # started a new load, which stays (status says "loading", no second load).
        if self.loading is loading:
            self.loading = None
            self.set_status(self.idle_status())  # not over the new load's "loading"
        return was_loaded
