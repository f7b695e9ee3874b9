"""The daemon's side of the decoder process: start it, feed it one file, read the samples.

Every file gets a fresh process (worker.py), so nothing one hostile file did to FFmpeg's
state can touch the next client's file. Starting Python and PyAV costs about 90 ms of
CPU, so the next process is started as soon as a decode ends: the next file finds one
ready. Raw PCM never comes here (whisperd/audio.py converts it in the daemon with numpy).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from whisperd.decoding import worker
from whisperd.decoding.errors import AudioTooLarge, BadAudio

log = logging.getLogger("whisperd.decoding")

WORKER = Path(worker.__file__)
# Address space for FFmpeg's own needs, on top of what the process uses once PyAV is
# loaded and twice the file (the bytes read, and PyAV's view of them).
MEMORY_HEADROOM = 512 * 1024 * 1024
# CPU time: a fixed allowance plus one second per minute of the longest audio accepted.
# Every accepted codec decodes at several hundred times real time (docs/robustness.md).
CPU_BASE_SECONDS = 5
CPU_SECONDS_PER_AUDIO_SECOND = 1 / 60
# Wall-clock time before the process is killed: its CPU allowance twice over (the daemon's
# model shares the cores) and a margin.
WALL_SLACK_SECONDS = 10
POLL_SECONDS = 0.1
# The worker's records are 256 KiB of samples or a little JSON.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# daemon.max_audio_seconds may be infinite; a week is more than anyone transcribes.
LONGEST_SECONDS = 7 * 24 * 3600.0


class Cancelled(BadAudio):
    """The request was cancelled or abandoned while its file was being decoded."""

    code = "cancelled"


@dataclass
class Outcome:
    """What came back from one decoder process."""

    chunks: list[bytes] = field(default_factory=list)  # 16 kHz mono s16le
    samples: int = 0
    facts: dict[str, Any] | None = None  # the ``D`` record
    error: dict[str, Any] | None = None  # the ``E`` record
    killed: str | None = None  # why the daemon killed it


class Pool:
    """Decoder processes: one kept ready, one per file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None

    def take(self) -> subprocess.Popen[bytes]:
        """The spare (it may still be loading PyAV: sooner than a new one all the same)."""
        with self._lock:
            process, self._spare = self._spare, None
        if process is None or process.poll() is not None:
            process = spawn()
        return process

    def replenish(self) -> None:
        """Start the next file's process, once this file's decode no longer needs the CPU."""
        with self._lock:
            if self._spare is None or self._spare.poll() is not None:
                self._spare = spawn()

    def close(self) -> None:
        """Let the spare go (it exits when its input closes)."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            finish(spare)


def spawn() -> subprocess.Popen[bytes]:
    # By path: the worker imports only the standard library and PyAV. stderr is dropped:
    # FFmpeg and Python messages could quote the file; failures come back as records.
    return subprocess.Popen(
        [sys.executable, str(WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd="/",
        close_fds=True,
        env=worker_environment(),
    )


def worker_environment() -> dict[str, str]:
    """The worker makes its vanishing working directory in our runtime directory, the one
    place whisperd writes (docs/hardening.md), not in $TMPDIR."""
    from whisperd.runtime import runtime_dir

    env = dict(os.environ)
    try:
        env[worker.WORKDIR_ENV] = str(runtime_dir())
    except OSError:  # no private runtime directory: the worker works in / instead
        env.pop(worker.WORKDIR_ENV, None)
    return env


def finish(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_pool = Pool()
atexit.register(_pool.close)


@dataclass
class Stats:
    """Since the daemon started: files decoded or refused, and the highest peak resident
    memory a decoder process reported (KiB)."""

    files: int = 0
    peak_kib: int = 0


stats = Stats()


def release() -> None:
    """Let the waiting decoder process go (about 40 MB), say on ``unload``."""
    _pool.close()


def prepare() -> None:
    """Have a decoder process ready (say when a file upload starts): the first file after
    the daemon starts then does not wait for Python and PyAV to load."""
    _pool.replenish()


def decode(
    data: bytes, max_seconds: float, cancelled: Callable[[], bool] | None = None
) -> list[bytes]:
    """``data`` decoded to 16 kHz mono s16le chunks in a decoder process.

    Raises AudioTooLarge past ``max_seconds`` (from the header or while decoding), Cancelled
    when ``cancelled()`` turns true, BadAudio for anything else that goes wrong — including
    the process crashing, running out of its memory or CPU time, or hanging.
    """
    max_seconds = min(max_seconds, LONGEST_SECONDS)
    max_samples = int(max_seconds * worker.SAMPLE_RATE)
    cpu = int(CPU_BASE_SECONDS + max_seconds * CPU_SECONDS_PER_AUDIO_SECOND)
    job = worker.Job(len(data), max_samples, cpu, MEMORY_HEADROOM)
    header = json.dumps(asdict(job)).encode()
    process = _pool.take()
    started = time.monotonic()
    outcome = exchange(
        process,
        [struct.pack("<Q", len(header)) + header, data],
        started + 2 * cpu + WALL_SLACK_SECONDS,
        max_samples,
        cancelled or (lambda: False),
    )
    if outcome.facts is None and outcome.error is None:
        finish(process)  # its exit status is the verdict
    else:  # its answer is in; it exits by itself, reaped off the request's path
        threading.Thread(target=finish, args=(process,), daemon=True).start()
    _pool.replenish()  # vfork and exec: 0.3 to 10 ms measured; the imports are the child's
    return verdict(outcome, process.returncode, job, time.monotonic() - started)


def exchange(
    process: subprocess.Popen[bytes],
    request: list[bytes],
    deadline: float,
    max_samples: int,
    cancelled: Callable[[], bool],
) -> Outcome:
    """Write the request and read records at the same time, until the process closes its
    output, is killed for its deadline or cancellation, or sends more than it may or
    something that is not a record (the process is not trusted either)."""
    assert process.stdin is not None and process.stdout is not None
    outcome = Outcome()
    pending = [memoryview(part) for part in request if part]
    buffer = bytearray()
    with selectors.DefaultSelector() as selector:
        os.set_blocking(process.stdin.fileno(), False)
        selector.register(process.stdin, selectors.EVENT_WRITE)
        selector.register(process.stdout, selectors.EVENT_READ)
        while selector.get_map():
            if cancelled():
                return kill(process, outcome, "cancelled")
            if time.monotonic() > deadline:
                return kill(process, outcome, "timeout")
            for key, _ in selector.select(POLL_SECONDS):
                if key.fileobj is process.stdin:
                    pending = write_some(process, selector, pending)
                    continue
                data = os.read(process.stdout.fileno(), 1 << 20)
                if not data:
                    selector.unregister(process.stdout)
                    continue
                buffer += data
                if not parse_records(buffer, outcome):
                    return kill(process, outcome, "garbled")
                if outcome.samples > max_samples:
                    return kill(process, outcome, "too_large")
    return outcome


def write_some(
    process: subprocess.Popen[bytes], selector: selectors.BaseSelector, pending: list[memoryview]
) -> list[memoryview]:
    assert process.stdin is not None
    try:
        sent = os.write(process.stdin.fileno(), pending[0][: 1 << 20])
    except BrokenPipeError:  # it died or refused early: its records (or exit) say why
        pending = []
    else:
        pending = [pending[0][sent:], *pending[1:]] if sent < len(pending[0]) else pending[1:]
    if not pending:
        selector.unregister(process.stdin)
        process.stdin.close()
    return pending


def parse_records(buffer: bytearray, outcome: Outcome) -> bool:
    """Move the complete records at the start of ``buffer`` into ``outcome``; False when
    the bytes are not records of the worker's format."""
    while len(buffer) >= 5:
        kind = bytes(buffer[:1])
        (length,) = struct.unpack("<I", buffer[1:5])
        if kind not in (b"A", b"D", b"E") or length > MAX_RECORD_BYTES:
            return False
        if len(buffer) < 5 + length:
            return True
        payload = bytes(buffer[5 : 5 + length])
        del buffer[: 5 + length]
        if kind == b"A":
            outcome.chunks.append(payload)
            outcome.samples += length // worker.SAMPLE_BYTES
            continue
        try:
            record = json.loads(payload)
            stats.peak_kib = max(stats.peak_kib, int(record.get("peak_kib", 0)))
        except (ValueError, TypeError, AttributeError):
            return False
        stats.files += 1
        if kind == b"D":
            outcome.facts = record
        else:
            outcome.error = record
    return True


def kill(process: subprocess.Popen[bytes], outcome: Outcome, why: str) -> Outcome:
    process.kill()
    outcome.killed = why
    return outcome


def verdict(
    outcome: Outcome, returncode: int | None, job: worker.Job, seconds: float
) -> list[bytes]:
    """The samples, or the typed error; every failure is logged with sizes only."""
    if outcome.killed == "cancelled":
        raise Cancelled("request cancelled")
    if outcome.killed == "too_large":
        raise AudioTooLarge(too_long(job))
    if outcome.error is not None:
        code, message = outcome.error.get("code"), str(outcome.error.get("message"))
        log.info("audio file of %d bytes refused (%s): %s", job.size, code, message)
        if code == "audio_too_large":
            raise AudioTooLarge(f"{message}; {too_long(job)}")
        if code == "unavailable":
            raise RuntimeError(f"the audio decoder cannot start: {message}")
        raise BadAudio(message)
    if outcome.facts is not None and outcome.killed is None:
        return outcome.chunks
    reason = failure(outcome, returncode, job)
    log.warning(
        "audio decoder process %s on a %d-byte file after %.1f s", reason, job.size, seconds
    )
    raise BadAudio(f"cannot decode the audio file: the decoder {reason}")


def too_long(job: worker.Job) -> str:
    limit = job.max_samples / worker.SAMPLE_RATE
    return f"more than daemon.max_audio_seconds ({limit:.0f} s)"


def failure(outcome: Outcome, returncode: int | None, job: worker.Job) -> str:
    if outcome.killed == "timeout":
        return "did not finish in time"
    if outcome.killed == "garbled":
        return "answered with something else than samples"
    if returncode is not None and returncode < 0:
        number = -returncode
        if number == signal.SIGXCPU:
            return f"used up its {job.cpu_seconds} s of CPU time"
        if number == signal.SIGKILL:  # the hard CPU limit, or the kernel out of memory
            return "was killed (SIGKILL: CPU time or memory)"
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"crashed ({name})"
    return f"stopped without an answer (exit status {returncode})"
