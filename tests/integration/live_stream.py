"""A live dictation client for the tests and the benchmark: raw protocol, PCM sent at
real-time pace in 20 ms blocks (as whisperd-keys sends it), every reply kept with the
time it arrived, so a test can tell commit events that came during the stream."""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests import wire

RATE = 16000
BLOCK = 0.02


@dataclass
class LiveRun:
    replies: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    end_sent: float = 0.0  # monotonic time `end` was sent
    started: float = 0.0  # monotonic time the first audio was sent

    @property
    def commits(self) -> list[dict[str, Any]]:
        return [r for _, r in self.replies if r["type"] == "commit"]

    @property
    def result(self) -> dict[str, Any]:
        return self.replies[-1][1]

    def commits_before_end(self) -> list[dict[str, Any]]:
        return [r for t, r in self.replies if r["type"] == "commit" and t < self.end_sent]

    def arrival(self, reply: dict[str, Any]) -> float:
        """When a reply arrived, in seconds of stream time (0: the first audio sent)."""
        return next(t for t, r in self.replies if r is reply) - self.started


def _drain(sock: socket.socket, run: LiveRun, wait: float = 0.0) -> None:
    while select.select([sock], [], [], wait)[0]:
        run.replies.append((time.monotonic(), wire.recv(sock)))
        wait = 0.0


def stream_live(
    sock: socket.socket,
    rid: Any,
    audio: np.ndarray[Any, Any],
    options: dict[str, Any] | None = None,
    pace: float = 1.0,
) -> LiveRun:
    """Stream int16 mono 16 kHz ``audio`` as a live dictation; the replies up to the
    result (or an error). ``pace``: 1.0 is real time, 0 sends as fast as possible."""
    request = {
        "type": "transcribe",
        "id": rid,
        "format": "pcm",
        "encoding": "s16le",
        "sample_rate": RATE,
        "channels": 1,
        "options": {"live": True, **(options or {})},
    }
    sock.sendall(wire.msg(request))
    accepted = wire.recv(sock)
    assert accepted == {"type": "accepted", "id": rid}, accepted
    pcm = audio.astype("<i2").tobytes()
    block = int(RATE * BLOCK) * 2
    run = LiveRun(started=time.monotonic())
    for index, offset in enumerate(range(0, len(pcm), block)):
        due = run.started + index * BLOCK * pace
        _drain(sock, run, max(0.0, due - time.monotonic()))
        part = pcm[offset : offset + block]
        sock.sendall(wire.msg({"type": "audio", "id": rid, "size": len(part)}) + wire.frame(part))
    _drain(sock, run, max(0.0, run.started + len(pcm) / 2 / RATE * pace - time.monotonic()))
    sock.sendall(wire.msg({"type": "end", "id": rid}))
    run.end_sent = time.monotonic()
    while not run.replies or run.replies[-1][1]["type"] in ("segment", "commit"):
        run.replies.append((time.monotonic(), wire.recv(sock)))
    return run


def check_pieces(run: LiveRun) -> None:
    """The contract of docs/protocol.md, "Live dictation"."""
    result, commits = run.result, run.commits
    assert result["type"] == "result", result
    assert commits, "no commit event"
    assert [c["seq"] for c in commits] == list(range(len(commits)))
    assert [c["final"] for c in commits] == [False] * (len(commits) - 1) + [True]
    assert all(c["text"] for c in commits[:-1]), "an empty piece before the final one"
    assert all(c["text"] == c["text"].strip() for c in commits)
    assert commits[0]["start"] == 0.0
    for before, after in zip(commits, commits[1:], strict=False):
        assert before["end"] == after["start"]  # no audio in two pieces, none in none
    assert result["text"] == " ".join(c["text"] for c in commits if c["text"])
    final_at = next(t for t, r in run.replies if r is commits[-1])
    assert final_at >= run.end_sent  # the final piece comes after `end`


async def stream_virtual(
    scheduler: Any,
    audio: np.ndarray[Any, Any],
    options: dict[str, Any],
    lag: float = 0.0,
    pieces: list[str] | None = None,
    events: list[Any] | None = None,
) -> str:
    """A stream through the daemon's real ``Scheduler`` (and its engine), in process and in
    *virtual time*: after each 20 ms block it waits until the worker is idle, so every
    draft and window the policy asks for is made where it asks, as on a machine fast
    enough to keep up. The same audio gives the same pieces on every run, whatever the
    load (at real-time pace, where a piece ends depends on how long the last one took to
    decode). ``lag``: seconds of audio that arrive while each draft or window decodes, as
    on a machine that takes that long (or a client that sends faster than real time),
    still the same on every run. Returns the result's text; a live stream's commit
    events must join into it (their texts are added to ``pieces``, and the events to
    ``events``, if given)."""
    import asyncio

    from whisperd.protocol import PcmFormat, ResultReply, Transcribe

    replies: list[Any] = []
    request = Transcribe("v", "pcm", PcmFormat("s16le", RATE, 1), options)
    job = scheduler.new_job(request, replies.append, object())
    await scheduler.ensure_loaded()
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    block = int(RATE * BLOCK)

    def decoding() -> bool:
        return bool(scheduler.busy) or job.window is not None or job.drafting is not None

    def running() -> object:
        return job.drafting or job.window

    owed = 0  # blocks still to arrive while the decode that started runs
    for start in range(0, pcm.size, block):
        before = running()
        scheduler.add_audio(job, pcm[start : start + block].tobytes())
        if running() is not None and running() is not before:
            owed = round(lag / BLOCK)
        if owed > 0:
            owed -= 1
            continue
        while decoding():
            current = running()
            await asyncio.sleep(0.002)
            if running() is not None and running() is not current:
                # The decode that ended started the next one (a draft after a commit):
                # the audio goes on arriving while it runs too.
                owed = round(lag / BLOCK)
                break
    await scheduler.submit(job)
    result = replies[-1]
    assert isinstance(result, ResultReply), result
    if options.get("live"):
        commits = [r.text for r in replies if getattr(r, "TYPE", "") == "commit"]
        assert " ".join(t for t in commits if t) == result.result["text"]
        if pieces is not None:
            pieces.extend(commits)
        if events is not None:  # the CommitReply events themselves
            events.extend(r for r in replies if getattr(r, "TYPE", "") == "commit")
    return str(result.result["text"])
