"""Who may use the HTTP front. On loopback without a token: programs of this machine, but
not web pages (a page may POST a form to 127.0.0.1, and reach it by another name through
DNS rebinding): the Host must be a loopback name and a web Origin must be a loopback one.
With a token (``http.token_file``, needed to listen beyond loopback): every request must
carry ``Authorization: Bearer <token>``, compared in constant time. The token is never
logged or echoed."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import stat
from pathlib import Path

from aiohttp import web

from whisperd.fronts import FrontRefused
from whisperd.fronts.http.errors import ApiError

log = logging.getLogger("whisperd")

MAX_TOKEN_BYTES = 4096
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
# Browser extensions (the "browser extensions" users) send their own origin.
EXTENSION_SCHEMES = ("chrome-extension://", "moz-extension://", "safari-web-extension://")


def read_token(path_text: str) -> bytes:
    """The bearer token in ``path_text`` (surrounding whitespace removed); FrontRefused
    when the file cannot be read, is empty, or its group or other users may use it (as
    ssh refuses such a private key: whoever can read the token can use the model)."""
    path = Path(path_text).expanduser()
    try:
        with path.open("rb") as file:
            mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)  # of the file read
            data = file.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise FrontRefused(f"http.token_file {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        what = "readable" if mode & (stat.S_IRGRP | stat.S_IROTH) else "writable or executable"
        raise FrontRefused(
            f"http.token_file {path} is {what} by other users or its group "
            f"(mode {mode:04o}): chmod 600 it"
        )
    token = data.strip()
    if not token or len(token) > MAX_TOKEN_BYTES or any(b < 33 or b > 126 for b in token):
        raise FrontRefused(
            f"http.token_file {path} must hold one token of 1..{MAX_TOKEN_BYTES} printable "
            "ASCII characters without spaces"
        )
    return token


class Guard:
    def __init__(self, token: bytes | None) -> None:
        self.token = token

    def check(self, request: web.Request) -> None:
        """Raise ApiError (401 or 403) for a request this front must not serve."""
        if self.token is not None:
            self.check_token(request)
            return
        host = request.headers.get("Host", "")
        if not loopback_host(host):
            raise ApiError(
                403,
                "this whisperd serves loopback names only (Host: localhost or 127.0.0.1); "
                "configure http.token_file to serve other names",
                "forbidden_host",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not allowed_origin(origin):
            raise ApiError(403, "web pages may not use this whisperd", "forbidden_origin")

    def check_token(self, request: web.Request) -> None:
        assert self.token is not None
        given = request.headers.get("Authorization", "").encode("latin-1", "replace")
        expected = b"Bearer " + self.token
        # compare_digest takes as long whatever the first differing byte is.
        if not hmac.compare_digest(given, expected):
            raise ApiError(
                401,
                "missing or wrong bearer token (Authorization: Bearer ...)",
                "invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )


def loopback_host(host: str) -> bool:
    """Whether a Host header names this machine's loopback: localhost, 127.x.y.z, [::1]."""
    name = host.strip().lower()
    if "@" in name:
        return False  # userinfo ("localhost:1@evil.example") names another host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_origin(origin: str) -> bool:
    if origin.startswith(EXTENSION_SCHEMES):
        return True
    for scheme in ("http://", "https://"):
        if origin.startswith(scheme):
            return loopback_host(origin[len(scheme) :].split("/", 1)[0])
    return False


def token_from_config(token_file: str) -> bytes | None:
    if not token_file:
        return None
    token = read_token(os.path.expanduser(token_file))
    log.info("http: bearer token required (from %s)", token_file)
    return token
