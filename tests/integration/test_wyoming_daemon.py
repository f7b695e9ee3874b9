"""whisperd itself serving Wyoming, as Home Assistant meets it: started by the first
Wyoming connection (socket activation, through systemd's own systemd-socket-activate),
answering with the real model, then exiting when idle although Home Assistant's
connection is still open -- the point of serving Wyoming from whisperd."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from tests.conftest import assert_heard_jfk_live, shared_audio, start_daemon, stop_daemon
from tests.integration.wyoming_harness import pcm_of, transcribe_wyoming

SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def jfk_pcm() -> bytes:
    from whisperd.audio import decode_file

    return pcm_of(np.rint(decode_file(shared_audio("jfk.flac").read_bytes()) * 32767))


async def transcribe_then_stay(port: int, pcm: bytes, process: subprocess.Popen[bytes]) -> str:
    """A transcription, then a connection left open and idle (describe answered on it)
    until whisperd exits; the server closes it."""
    received = await transcribe_wyoming(port, pcm)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 30)
        assert event is not None and Info.is_type(event.type)
        deadline = time.monotonic() + 120
        while process.poll() is None:  # the idle exit, with our connection open
            assert time.monotonic() < deadline, "whisperd stayed up for an idle connection"
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(client.read_event(), 30) is None  # closed at exit
    return received.text


@pytest.mark.skipif(not os.path.exists(SOCKET_ACTIVATE), reason="needs systemd-socket-activate")
def test_activated_by_wyoming_and_idle_exit_with_a_connection_open(tmp_path: Path) -> None:
    port = free_port()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(tmp_path)}
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"):
        env.pop(name, None)
    log_path = tmp_path / "whisperd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [SOCKET_ACTIVATE, "-l", str(runtime / "whisperd.sock"), "-l", f"127.0.0.1:{port}"]
            + ["--fdname=whisperd:wyoming", sys.executable, "-m", "whisperd.server"]
            + ["--idle-timeout", "5"],
            stdout=log,
            stderr=log,
            env=env,
        )
    try:
        wait_listening(port, process)
        text = asyncio.run(transcribe_then_stay(port, jfk_pcm(), process))
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
    logged = log_path.read_text(errors="replace")
    assert process.returncode == 0, logged
    assert "serving wyoming" in logged and "idle for" in logged, logged
    assert_heard_jfk_live(text)
    assert "country" not in logged.lower()  # the text is never logged


def test_served_from_the_listen_setting(tmp_path: Path) -> None:
    """Without socket activation, [wyoming] listen binds the socket itself."""
    port = free_port()
    daemon = start_daemon(tmp_path, config=f'[wyoming]\nlisten = "127.0.0.1:{port}"\n')
    try:
        wait_listening(port, daemon.process)
        received = asyncio.run(transcribe_wyoming(port, jfk_pcm()))
        assert_heard_jfk_live(received.text)
    finally:
        stop_daemon(daemon)
    assert daemon.process.returncode == 0, daemon.log()


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            assert process.poll() is None, "whisperd (or the activation tool) exited"
            assert time.monotonic() < deadline, "nothing listens"
            time.sleep(0.05)
