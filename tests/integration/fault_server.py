"""A fault-injecting TCP server double on loopback, for the remote engine's failures.

It speaks just enough HTTP or Wyoming to take a whole request (an HTTP request with its
body; Wyoming events up to ``audio-stop``), then misbehaves as told: never answers
(``slow``), answers bytes that are not an answer (``garbage``), answers too much
(``too_big``: announced, or streamed without announcing it), breaks off in the middle
of an answer (``drop``), answers a transcript full of terminal control characters
(``control_chars``), or redirects the request elsewhere (``redirect``, with
``redirect=(status, location)``). ``capture`` answers every HTTP request with a transcript
and keeps its head and body: the other host a redirect points to. A port nobody listens on
is ``refused_port()``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.integration.remote_servers import free_port

MODES = (
    "slow",
    "garbage",
    "too_big",
    "too_big_unannounced",
    "drop",
    "picky",
    "listen",
    "control_chars",
    "redirect",
    "capture",
)
# A transcript that would move a terminal's cursor, colour it, ring it, and overwrite
# what was printed (the reviewer's repro), with a C1 CSI and a DEL as well.
CONTROL_TEXT = "hello\x1b[31m\x07 world\x00\x08\x08\x08rm -rf ~\r\n\x9b2J\x7fend"
BIG = 6 * 1024 * 1024  # past whisperd's 4 MiB answer bound


def refused_port() -> int:
    return free_port()  # bound once and closed: nothing listens there


def _read_http_request(conn: socket.socket, heads: list[bytes]) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(65536)
        if not part:
            return b""
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    heads.append(head)
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    }
    if b"content-length" in headers:
        wanted = int(headers[b"content-length"])
        while len(body) < wanted and (part := conn.recv(65536)):
            body += part
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":  # to the last chunk
        while not body.endswith(b"0\r\n\r\n") and (part := conn.recv(65536)):
            body += part
    return body


def _read_wyoming_request(conn: socket.socket, heads: list[bytes]) -> bytes:
    data = b""
    while b'"audio-stop"' not in data:
        part = conn.recv(65536)
        if not part:
            return b""
        data = data[-64:] + part
    return data


HTTP_ANSWERS = {
    "garbage": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    b"<html>nope</html>",
    "too_big": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(BIG).encode()
    + b"\r\n\r\n",
    "too_big_unannounced": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\n\r\n",
    "drop": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    b'{"text": "and so my fell',
}


def json_answer(status: bytes, data: object, extra: bytes = b"") -> bytes:
    body = json.dumps(data).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n" + extra + b"Connection: close\r\n\r\n" + body
    )  # fmt: skip


def redirect_answer(status: int, location: str) -> bytes:
    return json_answer(
        f"{status} Moved".encode(), {"text": "the redirect's own body"},
        f"Location: {location}\r\n".encode(),
    )  # fmt: skip


WYOMING_ANSWERS = {
    "garbage": b"this is not a wyoming event\n",
    "too_big": b'{"type": "transcript", "version": "1.5.0", "payload_length": '
    + str(BIG).encode()
    + b"}\n",
    "too_big_unannounced": b'{"type": "transcript", "data_length": ' + str(BIG).encode() + b"}\n",
    "drop": b'{"type": "transcript", "version": "1.5.0", "data_length": 400}\n{"text": "and so',
    "control_chars": b'{"type": "transcript", "data": '
    + json.dumps({"text": CONTROL_TEXT}).encode()
    + b"}\n",
}


@dataclass
class Double:
    port: int
    heads: list[bytes] = field(default_factory=list)  # HTTP requests' heads, as received
    bodies: list[bytes] = field(default_factory=list)  # "capture": HTTP requests' bodies
    redirect: tuple[int, str] = (307, "")  # "redirect": the status and the Location
    audio_bytes: int = 0  # "listen": Wyoming audio-chunk payload received so far


def _listen_wyoming(conn: socket.socket, double: Double) -> None:
    """A well-behaved Wyoming server that counts the audio as it arrives and answers
    ``transcript`` "streamed" after ``audio-stop``."""
    reader = conn.makefile("rb")
    while line := reader.readline():
        header = json.loads(line)
        data_length = header.get("data_length") or 0
        reader.read(data_length)
        payload = reader.read(header.get("payload_length") or 0)
        if header["type"] == "audio-chunk":
            double.audio_bytes += len(payload)
        if header["type"] == "audio-stop":
            conn.sendall(b'{"type": "transcript", "data": {"text": "streamed"}}\n')
            return


def picky_answer(refuse: bool) -> bytes:
    if refuse:
        body = b'{"error": {"message": "unsupported response_format", "type": "invalid"}}'
        status = b"400 Bad Request"
    else:
        body, status = b'{"text": "an answer in plain json"}', b"200 OK"
    length = str(len(body)).encode()
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + length
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


def _serve(
    conn: socket.socket, protocol: str, mode: str, stop: threading.Event, double: Double
) -> None:
    with conn:
        conn.settimeout(30)
        try:
            if mode == "listen":
                _listen_wyoming(conn, double)
                return
            read = _read_http_request if protocol == "http" else _read_wyoming_request
            body = read(conn, double.heads)
            if mode == "picky":  # an OpenAI-compatible server without verbose_json
                conn.sendall(picky_answer(b"verbose_json" in body))
                return
            if mode == "capture":
                double.bodies.append(body)
                conn.sendall(json_answer(b"200 OK", {"text": "from the other host"}))
                return
            if mode == "redirect":
                conn.sendall(redirect_answer(*double.redirect))
                return
            if mode == "control_chars" and protocol == "http":
                conn.sendall(json_answer(b"200 OK", {"text": CONTROL_TEXT}))
                return
            if mode == "slow":
                stop.wait(60)
                return
            answers = HTTP_ANSWERS if protocol == "http" else WYOMING_ANSWERS
            conn.sendall(answers[mode])
            if mode.startswith("too_big"):
                block = b"a" * 65536
                for _ in range(BIG // len(block) + 1):
                    conn.sendall(block)
        except OSError:
            pass  # the client gave up (as it should): nothing to report


@contextmanager
def fault_server(
    protocol: str, mode: str, port: int = 0, redirect: tuple[int, str] = (307, "")
) -> Iterator[Double]:
    """A server double on 127.0.0.1 (``port``, or a random one) misbehaving as ``mode``."""
    assert protocol in ("http", "wyoming") and mode in MODES
    listener = socket.create_server(("127.0.0.1", port))
    double = Double(listener.getsockname()[1], redirect=redirect)
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=_serve, args=(conn, protocol, mode, stop, double), daemon=True
            )
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield double
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for thread in threads:
            thread.join(5)
