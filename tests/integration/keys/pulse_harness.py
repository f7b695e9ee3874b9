"""A headless PulseAudio with a virtual microphone, private to one test run.

A null sink ``virtspk`` whose monitor is remapped into the source ``virtmic`` (the default
source): whatever ``paplay --device=virtspk`` plays, PortAudio records through ALSA's pulse
plugin. A silent ``pacat`` keeps the sink running (an idle null sink delivers nothing) and
a first capture absorbs the start-up stall.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

REQUIRED = ("pulseaudio", "pactl", "pacat", "parec", "paplay")
APT_PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED if shutil.which(tool) is None]


class PulseAudio:
    def __init__(self, base: Path) -> None:
        self.runtime = base / "run"
        self.home = base / "home"
        self.env = dict(os.environ, XDG_RUNTIME_DIR=str(self.runtime), HOME=str(self.home))
        self.env.pop("PULSE_SERVER", None)
        self._silence: subprocess.Popen[bytes] | None = None

    def _run(self, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout, check=False)

    def start(self) -> None:
        self.runtime.mkdir(mode=0o700, parents=True)
        self.home.mkdir(parents=True)
        started = self._run(
            "pulseaudio",
            "-D",
            "-n",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--system=false",
            "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=virtspk rate=16000 channels=1",
            "--load=module-remap-source master=virtspk.monitor source_name=virtmic",
            f"--log-target=file:{self.runtime / 'pulse.log'}",
        )
        if started.returncode != 0:
            raise RuntimeError(
                f"pulseaudio did not start: {started.stderr.decode(errors='replace')}"
            )
        self._wait(lambda: self._run("pactl", "info").returncode == 0, "pactl info")
        self._run("pactl", "set-default-source", "virtmic")
        self._run("pactl", "set-default-sink", "virtspk")
        self._silence = subprocess.Popen(
            [
                "pacat",
                "--playback",
                "--latency-msec=30",
                "--device=virtspk",
                "--rate=16000",
                "--channels=1",
                "--format=s16le",
                "/dev/zero",
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(
            lambda: bool(self._run("pactl", "list", "short", "sink-inputs").stdout.strip()),
            "the silent playback",
        )
        # The first capture after start stalls about 2 s: absorb it here.
        warm = subprocess.Popen(
            ["parec", "--device=virtmic", "--rate=16000", "--channels=1", "--format=s16le"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert warm.stdout is not None
        deadline = time.monotonic() + 5
        got = 0
        while got < 16000 and time.monotonic() < deadline:
            got += len(warm.stdout.read1(4096))
        warm.kill()
        warm.wait()

    def play(self, path: Path) -> None:
        result = self._run("paplay", "--latency-msec=30", "--device=virtspk", str(path), timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"paplay failed: {result.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        if self._silence is not None:
            self._silence.send_signal(signal.SIGTERM)
            try:
                self._silence.wait(5)
            except subprocess.TimeoutExpired:
                self._silence.kill()
        self._run("pulseaudio", "-k")

    def _wait(self, ready: object, what: str) -> None:
        assert callable(ready)
        for _ in range(100):
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"PulseAudio: timed out waiting for {what}")


def write_wav(path: Path, samples: Any) -> Path:
    """16-bit mono 16 kHz (paplay's libsndfile stops early on some other formats)."""
    import wave

    import numpy as np

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path
