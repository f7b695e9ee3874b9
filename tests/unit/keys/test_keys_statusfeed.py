"""StatusFeed: followers see the statuses in the order the machine decided them, whichever
threads applied the events (the reader thread's commit, the main loop's stop)."""

from __future__ import annotations

import threading
from typing import Any

from whisperd.keys.status import PieceCommitted, RecordingStarted, RecordingStopped, State, Status
from whisperd.keys.statusfeed import StatusFeed


class PausingLock:
    """A lock whose first release by ``pause_thread`` lets another thread run before that
    thread goes on: the scheduling that once published a commit's ``recording`` after the
    stop's ``transcribing`` (seen in the VM, under emulation)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pause_thread: threading.Thread | None = None
        self.other_done = threading.Event()
        self.paused = threading.Event()

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()
        if threading.current_thread() is self.pause_thread and not self.paused.is_set():
            self.paused.set()
            assert self.other_done.wait(5), "the other thread never ran"


def test_statuses_reach_followers_in_the_order_the_machine_decided() -> None:
    feed = StatusFeed("", keep_text=True, wall=lambda: 100.0, probe=lambda path: None)
    seen: list[Status] = []
    feed.listeners.append(seen.append)
    feed.apply(RecordingStarted())
    lock = PausingLock()
    feed._lock = lock  # type: ignore[assignment]

    def reader() -> None:  # the client's reader thread: a piece arrives while recording
        feed.apply(PieceCommitted("a third piece"))

    reader_thread = threading.Thread(target=reader)
    lock.pause_thread = reader_thread
    stopper = threading.Thread(
        target=lambda: (feed.apply(RecordingStopped()), lock.other_done.set())
    )
    reader_thread.start()
    # the reader has decided its status and let go of the lock
    assert lock.paused.wait(5), "the reader never let go of the feed's lock"
    stopper.start()
    stopper.join(5)
    reader_thread.join(5)

    states = [status.state for status in seen]
    assert states == [State.RECORDING, State.RECORDING, State.TRANSCRIBING]
    assert feed.snapshot().state is State.TRANSCRIBING
