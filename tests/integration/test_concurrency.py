"""Many clients at once against one whisperd: right ids, right texts, FIFO, a free event loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests import wire
from tests.conftest import RunningDaemon, shared_audio
from tests.integration.support import (
    SENTENCES,
    collect,
    connect,
    espeak_wavs,
    jfk_bytes,
    ping,
    send_audio,
    start,
    transcribe,
    wer,
    words,
)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return espeak_wavs(tmp_path_factory.mktemp("speech"))


def check_text(index: int, text: str) -> None:
    sentence, keys = SENTENCES[index]
    assert wer(sentence, text) <= 0.25, (sentence, text)
    assert set(keys) <= set(words(text)), (keys, text)


def check_segments(segments: list[dict[str, Any]], result: dict[str, Any]) -> None:
    assert result["type"] == "result", result
    assert segments, "no segment came before the result"
    assert " ".join(s["text"] for s in segments if s["text"]) == result["text"]
    assert [{k: s[k] for k in ("start", "end", "text")} for s in segments] == result["segments"]


@pytest.mark.slow
def test_many_concurrent_clients(daemon: RunningDaemon, wavs: list[Path]) -> None:
    clients = 8
    per_client = 2
    errors: list[str] = []
    done: list[tuple[Any, int]] = []

    def client(number: int) -> None:
        try:
            with connect(daemon, timeout=300) as sock:
                for k in range(per_client):
                    index = (number * per_client + k) % len(wavs)
                    rid = f"c{number}-{k}" if k % 2 else number * 100 + k  # strings and ints
                    segments, result = transcribe(sock, rid, wavs[index].read_bytes())
                    assert result["id"] == rid
                    check_segments(segments, result)
                    check_text(index, result["text"])
                    ping(sock, f"c{number}-after-{k}")
                    done.append((rid, index))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"client {number}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert not errors, errors
    assert len(done) == clients * per_client
    assert len({rid for rid, _ in done}) == clients * per_client


def test_ping_and_status_answer_while_a_transcription_runs(daemon: RunningDaemon) -> None:
    long_file = shared_audio("multilingual.mp3").read_bytes()  # 60 s: two 30 s windows
    with connect(daemon, timeout=300) as worker, connect(daemon) as other:
        start(worker, "long", "file")
        send_audio(worker, "long", long_file)
        worker.sendall(wire.msg({"type": "end", "id": "long"}))
        first = wire.recv(worker)
        assert (first["type"], first["id"]) == ("segment", "long"), first  # the model runs

        # Another connection is answered meanwhile, and sees the work in progress.
        ping(other, "other-ping")
        other.sendall(wire.msg({"type": "status", "id": "st"}))
        status = wire.recv(other)
        assert status["type"] == "status" and status["id"] == "st"
        assert status["busy"] is True
        assert status["queue_length"] == 1
        assert status["connections"] >= 2

        # The same connection too: its pong comes before the running request's result.
        worker.sendall(wire.msg({"type": "ping", "id": "same-ping"}))
        worker.sendall(wire.msg({"type": "status", "id": "same-status"}))
        seen: list[tuple[str, Any]] = []
        while True:
            message = wire.recv(worker)
            seen.append((message["type"], message["id"]))
            if message["type"] in ("result", "error"):
                break
        assert seen[-1] == ("result", "long"), seen
        order = [kind for kind, _ in seen]
        assert order.index("pong") < order.index("result"), seen
        assert order.index("status") < order.index("result"), seen
        assert {rid for _, rid in seen} == {"long", "same-ping", "same-status"}


def test_ping_before_end_result(daemon: RunningDaemon) -> None:
    """A ping sent right after `end` is answered before that request's result."""
    with connect(daemon) as sock:
        start(sock, 1, "file")
        send_audio(sock, 1, jfk_bytes())
        sock.sendall(wire.msg({"type": "end", "id": 1}) + wire.msg({"type": "ping", "id": 2}))
        kinds = []
        while (message := wire.recv(sock))["type"] != "result":
            kinds.append((message["type"], message["id"]))
        assert kinds[0] == ("pong", 2), kinds
        assert all(kind == ("segment", 1) for kind in kinds[1:]), kinds
        assert "country" in message["text"]


@pytest.mark.slow
def test_queue_is_fifo_by_end_across_connections(daemon: RunningDaemon, wavs: list[Path]) -> None:
    count = 5
    order = [3, 0, 4, 1, 2]  # the order in which the connections send `end`
    socks = [connect(daemon, timeout=300) for _ in range(count)]
    arrivals: dict[int, tuple[float, list[dict[str, Any]], dict[str, Any]]] = {}
    errors: list[str] = []

    def reader(n: int) -> None:
        try:
            segments, result = collect(socks[n], f"q{n}")
            arrivals[n] = (time.monotonic(), segments, result)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"reader {n}: {exc!r}")

    try:
        # A long request first, so the others queue behind it.
        blocker = connect(daemon, timeout=300)
        start(blocker, "block", "file")
        send_audio(blocker, "block", shared_audio("multilingual.mp3").read_bytes())
        for n, sock in enumerate(socks):
            start(sock, f"q{n}", "file")
            send_audio(sock, f"q{n}", wavs[n].read_bytes())
        blocker.sendall(wire.msg({"type": "end", "id": "block"}))
        ping(blocker, "b")  # the daemon has taken the `end`
        for n in order:
            socks[n].sendall(wire.msg({"type": "end", "id": f"q{n}"}))
            # The pong proves the `end` was handled before the next connection's is sent.
            ping(socks[n], f"p{n}")
        threads = [threading.Thread(target=reader, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        _, blocked = collect(blocker, "block")
        assert blocked["type"] == "result"
        for thread in threads:
            thread.join(300)
    finally:
        for sock in socks:
            sock.close()
        blocker.close()
    assert not errors, errors
    finished = sorted(range(count), key=lambda n: arrivals[n][0])
    assert finished == order, f"results came in the order {finished}, ends in {order}"
    queues = [arrivals[n][2]["timings"]["queue"] for n in order]
    assert all(q > 0 for q in queues), queues
    assert queues == sorted(queues), f"queue times {queues} do not grow in `end` order"
    for n in range(count):
        _, segments, result = arrivals[n]
        check_segments(segments, result)
        check_text(n, result["text"])


@pytest.mark.slow
def test_cancel_queued_and_running_requests(daemon: RunningDaemon, wavs: list[Path]) -> None:
    """One `cancelled` error per cancelled request, then nothing more for its id."""
    with connect(daemon, timeout=300) as blocker, connect(daemon, timeout=300) as sock:
        start(blocker, "block", "file")
        send_audio(blocker, "block", shared_audio("multilingual.mp3").read_bytes())
        blocker.sendall(wire.msg({"type": "end", "id": "block"}))
        ping(blocker, "b")
        start(sock, "queued", "file")
        send_audio(sock, "queued", wavs[0].read_bytes())
        sock.sendall(wire.msg({"type": "end", "id": "queued"}))
        ping(sock, "queued-now")  # the daemon has queued it
        sock.sendall(wire.msg({"type": "cancel", "id": "queued"}))
        reply = wire.recv(sock)
        assert (reply["type"], reply["id"], reply["code"]) == ("error", "queued", "cancelled")
        # the running one is cancelled from its own connection once it has begun
        first = wire.recv(blocker)
        assert (first["type"], first["id"]) == ("segment", "block"), first
        blocker.sendall(wire.msg({"type": "cancel", "id": "block"}))
        while (reply := wire.recv(blocker))["type"] == "segment":
            pass  # segments already on their way
        assert (reply["type"], reply["id"], reply["code"]) == ("error", "block", "cancelled")
        # both connections go on; the next request's reply is the first message for it
        for conn, rid, index in ((sock, "next", 1), (blocker, "next2", 2)):
            segments, result = transcribe(conn, rid, wavs[index].read_bytes())
            check_segments(segments, result)
            check_text(index, result["text"])


def test_cancel_right_after_end(daemon: RunningDaemon, wavs: list[Path]) -> None:
    """A cancel in the same read as `end` still finds the request (once a race)."""
    """Regression: a cancel in the same read as `end` used to get unknown_request."""
    with connect(daemon, timeout=300) as sock:
        start(sock, "c", "file")
        send_audio(sock, "c", wavs[3].read_bytes())
        sock.sendall(wire.msg({"type": "end", "id": "c"}) + wire.msg({"type": "cancel", "id": "c"}))
        reply = wire.recv(sock)
        assert (reply["type"], reply["id"], reply.get("code")) == ("error", "c", "cancelled"), reply
        ping(sock, "after")  # nothing else for "c" comes first
