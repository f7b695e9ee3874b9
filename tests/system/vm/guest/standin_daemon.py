#!/usr/bin/env python3
"""A stand-in for whisperd in the VM: the real protocol (docs/protocol.md), no model.

Under emulation the real model takes minutes per decode, so the live typing check talks to
this instead: it answers hello, accepts a live PCM stream, and sends the commit events a
dictation with pauses would get, driven by how much audio has arrived (piece K after
COMMIT_AT[K] seconds of audio), then the final piece and the result at `end`. Standard
library only, like any third-party client of the protocol. It writes the monotonic time of
each commit event it sends to TIMES (one line: "seq time"), so the checker can measure
commit -> typed.

    standin_daemon.py SOCKET TIMES
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import time

PIECES = ["Live typing works.", "The second piece,", "and a third."]
FINAL = "Done."
COMMIT_AT = [1.0, 2.5, 4.0]  # seconds of audio after which each piece is committed


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def recv_frame(conn: socket.socket) -> bytes:
    (length,) = struct.unpack(">I", recv_exactly(conn, 4))
    if length > 4 << 20:
        raise ConnectionError("frame too large")
    return recv_exactly(conn, length)


def send(conn: socket.socket, message: dict) -> None:
    data = json.dumps(message).encode()
    conn.sendall(struct.pack(">I", len(data)) + data)


class Connection:
    def __init__(self, conn: socket.socket, times_path: str) -> None:
        self.conn = conn
        self.times_path = times_path
        self.request: dict | None = None
        self.received = 0
        self.seq = 0

    def commit(self, text: str, final: bool) -> None:
        rid = self.request["id"] if self.request else None
        send(self.conn, {"type": "commit", "id": rid, "seq": self.seq, "text": text,
                         "start": 0.0, "end": 0.0, "final": final})  # fmt: skip
        try:
            with open(self.times_path, "a") as times:
                times.write(f"{self.seq} {time.monotonic():.4f}\n")
        except OSError as exc:  # the measurement is lost, the dictation goes on
            print("cannot note the commit time:", exc, flush=True)
        self.seq += 1

    def on_audio(self, size: int) -> None:
        self.received += size
        request = self.request
        if request is None or not request.get("options", {}).get("live"):
            return
        seconds = self.received / (
            2 * request.get("sample_rate", 16000) * request.get("channels", 1)
        )
        while self.seq < len(PIECES) and seconds >= COMMIT_AT[self.seq]:
            self.commit(PIECES[self.seq], False)

    def on_end(self, rid: object) -> None:
        live = bool(self.request and self.request.get("options", {}).get("live"))
        pieces = PIECES[: self.seq] if live else []
        if live:
            self.commit(FINAL, True)
        text = " ".join([*pieces, FINAL]) if live else " ".join([*PIECES, FINAL])
        seconds = self.received / 32000
        send(self.conn, {"type": "result", "id": rid, "text": text, "segments": [],
                         "language": "en", "duration": seconds, "skipped": None,
                         "timings": {}, "model": "stand-in", "device": "cpu"})  # fmt: skip
        self.request = None
        self.received = 0
        self.seq = 0

    def serve(self) -> None:
        try:
            while True:
                message = json.loads(recv_frame(self.conn))
                kind, rid = message.get("type"), message.get("id")
                if kind == "hello":
                    send(self.conn, {"type": "hello", "id": rid, "version": 1,
                                     "server": "standin/1", "limits": {}})  # fmt: skip
                elif kind == "transcribe":
                    self.request, self.received, self.seq = message, 0, 0
                    send(self.conn, {"type": "accepted", "id": rid})
                elif kind == "audio":
                    recv_frame(self.conn)
                    self.on_audio(int(message["size"]))
                elif kind == "end":
                    self.on_end(rid)
                elif kind == "cancel":
                    self.request = None
                    send(self.conn, {"type": "error", "id": rid, "code": "cancelled",
                                     "message": "cancelled"})  # fmt: skip
                elif kind == "ping":
                    send(self.conn, {"type": "pong", "id": rid})
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            self.conn.close()


def main() -> int:
    path, times_path = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    server.bind(path)
    os.umask(old)
    server.listen(8)
    print("stand-in listening on", path, flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=Connection(conn, times_path).serve, daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
