"""whisperd-keys idle: RSS and CPU of the dictation service doing nothing.

    .venv/bin/python -m bench.keys_idle SECONDS SOCKET

Run by ``python -m bench`` in a process of its own. The real ``whisperd-keys`` needs
/dev/input (keyboards) and /dev/uinput (typing); where those are missing, this runs the
real ``DictationService`` main loop with the same modules imported (``whisperd.keys.app``)
and doubles for the keyboards (``poll`` blocks for the service's POLL_SECONDS, as select()
on the devices would), the microphone and the virtual keyboard. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import whisperd.keys.app  # noqa: F401 - the modules the real program has loaded
from bench.daemon import rss_kib
from bench.dictation import IdleSource, RealtimeRecorder
from whisperd.keys.config import KeysConfig
from whisperd.keys.layout import CharMap, LayoutName
from whisperd.keys.service import DictationService
from whisperd.keys.trigger import Mode, TriggerMachine
from whisperd.keys.typer import Typer
from whisperd.keys.virtual import RecordingKeyboard


def main() -> int:
    seconds = float(sys.argv[1])
    socket_path = sys.argv[2]
    config = KeysConfig(socket_path=socket_path)
    keyboard = RecordingKeyboard()
    typer = Typer(keyboard, CharMap.for_layout(LayoutName("us")), delay=config.type_delay)

    def factory() -> object:
        raise RuntimeError("no dictation while idle")

    service = DictationService(
        TriggerMachine(combo=config.trigger_codes, mode=Mode(config.mode)),
        IdleSource(),
        RealtimeRecorder(),
        keyboard,
        typer,
        factory,
        config,  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    time.sleep(1.0)
    t0, c0 = time.monotonic(), sum(os.times()[:2])
    time.sleep(seconds)
    t1, c1 = time.monotonic(), sum(os.times()[:2])
    mem = rss_kib(os.getpid())
    threads = threading.active_count()
    service.stop_event.set()
    thread.join(5)
    print(
        json.dumps(
            {
                "seconds": t1 - t0,
                "cpu_seconds": c1 - c0,
                "cpu_percent": 100.0 * (c1 - c0) / (t1 - t0),
                "rss_kib": mem["VmRSS"],
                "hwm_kib": mem["VmHWM"],
                "threads": threads,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
