"""SIGTERM while a decode cannot stop (issue 11, item 8): the process still exits, with 0,
after the stop grace, instead of waiting for the worker thread.

The daemon runs in a child process (the exit is the point), with a fake engine whose
decode never returns on its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, os, signal, socket, sys, threading, time
    from pathlib import Path
    from tests import wire
    from tests.unit.daemon.fakes import FakeEngine, tone, wav_bytes
    from whisperd.config import DaemonConfig
    from whisperd.daemon.lifecycle import EarlySignals, run_daemon
    from whisperd.daemon.limits import Limits
    from whisperd.daemon.listener import bind_socket

    class StuckEngine(FakeEngine):
        def transcribe(self, *args, **kwargs):
            self.calls.append(("transcribe", 0, {}))
            threading.Event().wait()  # a decode that never checks for cancellation

    path = Path(sys.argv[1])
    engine = StuckEngine()
    early = EarlySignals().install()
    listener = bind_socket(path)

    def client():
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        wire.hello(sock)
        data = wav_bytes(tone(0.5))
        sock.sendall(wire.msg({"type": "transcribe", "id": "t", "format": "file"}))
        wire.recv(sock)
        sock.sendall(wire.msg({"type": "audio", "id": "t", "size": len(data)}) + wire.frame(data))
        sock.sendall(wire.msg({"type": "end", "id": "t"}))
        while not engine.calls:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        print(json.dumps(wire.recv(sock)), flush=True)

    threading.Thread(target=client, daemon=True).start()
    code = run_daemon(DaemonConfig(), listener, early, Limits(stop_grace=0.5), engine)
    sys.exit(code)
    """
)


def test_the_exit_does_not_wait_for_a_stuck_decode(tmp_path: Path) -> None:
    sock = tmp_path / "whisperd.sock"
    root = Path(__file__).resolve().parents[3]
    process = subprocess.run(
        [sys.executable, "-c", CHILD, str(sock)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    reply = json.loads(process.stdout.strip().splitlines()[-1])
    assert reply["code"] == "shutting_down" and reply["id"] == "t"
    assert not sock.exists()
