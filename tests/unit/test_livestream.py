"""The client side of a live dictation over a socketpair, against a scripted server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from whisperd.client import Client, ClientError, DaemonTimeout
from whisperd.protocol import encode_message, recv_message

Script = Callable[[socket.socket], None]


@contextlib.contextmanager
def serve(script: Script) -> Iterator[Client]:
    ours, theirs = socket.socketpair()
    server = threading.Thread(target=script, args=(theirs,), daemon=True)
    server.start()
    client = Client(ours, timeout=0.5)
    yield client
    client.close()
    server.join(2)
    theirs.close()


def read_until(sock: socket.socket, kind: str) -> dict[str, Any]:
    """Read messages (skipping audio payloads) until one of type ``kind``."""
    while True:
        message = recv_message(sock)
        if message["type"] == kind:
            return message
        if message["type"] == "audio":
            recv_audio(sock)


def recv_audio(sock: socket.socket) -> bytes:
    header = sock.recv(4, socket.MSG_WAITALL)
    size = int.from_bytes(header, "big")
    return sock.recv(size, socket.MSG_WAITALL) if size else b""


def commit(rid: Any, seq: int, text: str, final: bool = False) -> bytes:
    return encode_message(
        {"type": "commit", "id": rid, "seq": seq, "text": text, "start": 0, "end": 1,
         "final": final}
    )  # fmt: skip


def accept(sock: socket.socket) -> Any:
    request = read_until(sock, "transcribe")
    assert request["options"]["live"] is True and request["format"] == "pcm"
    sock.sendall(encode_message({"type": "accepted", "id": request["id"]}))
    return request["id"]


def test_commits_arrive_while_sending_and_before_the_result() -> None:
    def script(sock: socket.socket) -> None:
        rid = accept(sock)
        read_until(sock, "audio")
        recv_audio(sock)
        sock.sendall(commit(rid, 0, "First."))
        sock.sendall(encode_message({"type": "segment", "id": rid, "text": "x"}))
        read_until(sock, "end")
        sock.sendall(commit(rid, 1, "Last.", final=True))
        sock.sendall(encode_message({"type": "result", "id": rid, "text": " First. Last. "}))

    with serve(script) as client:
        got: list[tuple[str, bool]] = []
        stream = client.start_live(lambda e: got.append((e["text"], e["final"])))
        stream.send(b"\x00\x00" * 160)
        deadline = time.monotonic() + 2
        while not got and time.monotonic() < deadline:
            stream.send(b"\x00\x00" * 160)
            time.sleep(0.01)
        assert got == [("First.", False)], "the first piece came before end"
        result = stream.finish()
        assert got == [("First.", False), ("Last.", True)]
        assert result["text"] == "First. Last."


def test_an_error_mid_stream_is_raised_by_finish() -> None:
    def script(sock: socket.socket) -> None:
        rid = accept(sock)
        sock.sendall(encode_message({"type": "error", "id": rid, "code": "audio_too_large",
                                     "message": "too much"}))  # fmt: skip
        # the request is over: the client sends no `end` for it

    with serve(script) as client:
        stream = client.start_live(lambda e: None)
        time.sleep(0.2)
        with pytest.raises(ClientError) as raised:
            stream.finish()
        assert raised.value.code == "audio_too_large"


def test_cancel_from_another_thread_ends_finish_at_once() -> None:
    cancelled = threading.Event()

    def script(sock: socket.socket) -> None:
        accept(sock)
        read_until(sock, "cancel")
        cancelled.set()

    with serve(script) as client:
        client.timeout = 30
        stream = client.start_live(lambda e: None)
        threading.Timer(0.2, stream.cancel).start()
        started = time.monotonic()
        with pytest.raises(ClientError) as raised:
            stream.finish()
        assert raised.value.code == "cancelled"
        assert time.monotonic() - started < 5
        assert cancelled.wait(2), "the daemon was told"


def test_no_answer_after_end_is_a_timeout() -> None:
    def script(sock: socket.socket) -> None:
        accept(sock)
        read_until(sock, "end")
        time.sleep(1.5)

    with serve(script) as client:
        stream = client.start_live(lambda e: None)
        with pytest.raises(DaemonTimeout):
            stream.finish()


def test_closing_the_client_under_the_reader_ends_it_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # whisperd-keys' cancel closes the client while the reader thread may sit between
    # select() and its read: that thread died with EBADF (seen with `whisperctl dictate
    # cancel`) instead of ending the stream.
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    answered = threading.Event()

    def script(sock: socket.socket) -> None:
        rid = accept(sock)
        sock.sendall(commit(rid, 0, "hello"))
        answered.wait(5)

    with serve(script) as client:
        client.timeout = 30
        stream = client.start_live(lambda e: None)
        client.sock.close()
        with pytest.raises(ClientError):
            stream.finish()
        answered.set()
    assert crashed == []
