"""Raw wire helpers for tests that speak the protocol by hand (to send bad input)."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def msg(obj: Any) -> bytes:
    return frame(json.dumps(obj).encode())


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def recv(sock: socket.socket) -> dict[str, Any]:
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    value: dict[str, Any] = json.loads(recv_exact(sock, length))
    return value


def hello(sock: socket.socket) -> dict[str, Any]:
    sock.sendall(msg({"type": "hello", "id": 0, "version": 1}))
    return recv(sock)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
