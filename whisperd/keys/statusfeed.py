"""The dictation status of whisperd-keys, fed from its threads, published to followers.

The pure ``StatusMachine`` (status.py) decides; this wraps it with a lock, the wall clock
(a status event's ``since`` is unix time) and what is known about whisperd
(daemonstate.py: never by connecting to it). Listeners (the control server) get every
Status the machine returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from whisperd.keys.daemonstate import DaemonTracker, Probe, probe_daemon
from whisperd.keys.status import Event, Status, StatusMachine, Tick

log = logging.getLogger(__name__)

PROBE_SECONDS = 5.0  # how often whisperd is looked at while somebody follows the status

Listener = Callable[[Status], None]


class StatusFeed:
    def __init__(
        self,
        socket_path: str,
        keep_text: bool = False,
        wall: Callable[[], float] = time.time,
        probe: Callable[[str], Probe | None] = probe_daemon,
    ) -> None:
        self.socket_path = socket_path
        self.wall = wall
        self.probe = probe
        self.machine = StatusMachine(wall(), keep_text=keep_text)
        self.tracker = DaemonTracker()
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()

    def apply(self, event: Event) -> None:
        """From any thread."""
        with self._lock:
            self._apply_locked(event)

    def _apply_locked(self, event: Event) -> None:
        """Listeners are told under the lock: told after it, a status decided first could
        reach followers last (a commit's ``recording`` after the stop's ``transcribing``,
        seen in the VM). So a listener must not block, nor call back into the feed (the
        control server's ``publish`` only schedules the broadcast on its loop)."""
        status = self.machine.apply(event, self.wall())
        if status is not None:
            for listener in self.listeners:
                listener(status)

    def tick(self) -> None:
        self.apply(Tick())

    def snapshot(self) -> Status:
        with self._lock:
            return self.machine.snapshot(self.wall())

    @property
    def state(self) -> str:
        return str(self.snapshot().state)

    # -- the daemon (may block up to a couple of seconds: not from the main loop) ------
    def look_at_daemon(self) -> None:
        probe = self.probe(self.socket_path)
        with self._lock:  # one section: the tracker and the machine see probes in one order
            self._apply_locked(self.tracker.observe(probe))

    def dictation_answered(self) -> None:
        """whisperd returned a dictation's result: its model is loaded now."""
        probe = self.probe(self.socket_path)
        with self._lock:
            self._apply_locked(self.tracker.dictation_answered(probe))

    def watch_daemon(self, stop: threading.Event, wanted: Callable[[], bool]) -> threading.Thread:
        """A thread that looks at whisperd once now, then every PROBE_SECONDS while
        ``wanted()`` (somebody follows), until ``stop``."""

        def loop() -> None:
            first = True
            while not stop.is_set():
                if first or wanted():
                    try:
                        self.look_at_daemon()
                    except Exception as exc:  # noqa: BLE001 - a status probe must never kill us
                        log.debug("looking at whisperd failed: %s", exc)
                first = False
                stop.wait(PROBE_SECONDS)

        thread = threading.Thread(target=loop, name="whisperd-keys-daemon-probe", daemon=True)
        thread.start()
        return thread
