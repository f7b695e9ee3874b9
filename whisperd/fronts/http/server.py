"""The HTTP front's connections, taken by whisperd.fronts.accept.Acceptor (a connection
over the cap is answered 503 and closed). aiohttp's connection handler serves each one;
its answer to a request it cannot parse is OpenAI's error object, and its log of one is a
quiet line that does not repeat the client's bytes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from whisperd.fronts.accept import OncePer
from whisperd.fronts.http.errors import ApiError

log = logging.getLogger("whisperd")

# Client faults that reach aiohttp's handler rather than ours: a request it cannot parse,
# a body that breaks off or is malformed while aiohttp drops it after our answer.
CLIENT_FAULTS = (HttpProcessingError, web.RequestPayloadError, ConnectionError)


class ConnectionHandler(web.RequestHandler):
    """aiohttp's connection handler, with OpenAI-shaped answers to unparsable requests and
    quiet logs of client faults; it tells ``release`` when its connection is gone."""

    def __init__(
        self, manager: web.Server, release: Callable[[], None], faults: OncePer, **options: Any
    ) -> None:
        super().__init__(manager, **options)
        self.release = release
        self.faults = faults

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.release()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (400) or a handler that failed
        (500: our middleware answers every error first, so a bug in whisperd)."""
        if status < 500:
            self.faults.log(logging.INFO, "http: refused a malformed HTTP request (%s)", name(exc))
        else:
            log.error("http: a request failed unexpectedly", exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had begun; the connection is dropped")
        response = ApiError(status, client_message(status, exc), code_of(status)).response()
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's log of an error outside a handler: a body dropped after our answer
        that turns out malformed is the client's fault, anything else a bug."""
        exc = kw.get("exc_info")
        if isinstance(exc, CLIENT_FAULTS):
            self.faults.log(logging.INFO, "http: dropped a malformed request body (%s)", name(exc))
        else:
            log.error("http: unexpected error in a connection", exc_info=exc)


def name(exc: BaseException | None) -> str:
    return type(exc).__name__ if exc is not None else "no details"


def client_message(status: int, exc: BaseException | None) -> str:
    """What the client is told: aiohttp's own messages can quote the request's bytes."""
    if status >= 500:
        return "internal error in whisperd; its log says why"
    if isinstance(exc, LineTooLong):
        return "malformed HTTP request: a request or header line is over 8190 bytes"
    return f"malformed HTTP request ({name(exc)})"


def code_of(status: int) -> str:
    return "internal" if status >= 500 else "bad_request"


def refusal_bytes(limit: int) -> bytes:
    """What a connection over the cap is told: HTTP/1.1 and OpenAI's error object."""
    message = f"whisperd serves at most {limit} HTTP connections at once; try again"
    body = json.dumps(ApiError(503, message, "too_many_connections").body()).encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
