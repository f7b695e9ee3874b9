"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with a
fitting HTTP status, whatever went wrong; never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from whisperd.protocol import ErrorCode

log = logging.getLogger("whisperd")

INVALID = "invalid_request_error"
SERVER = "server_error"

# whisperd's error codes (docs/protocol.md) as (HTTP status, OpenAI error type).
STATUS_OF_CODE: dict[str, tuple[int, str]] = {
    ErrorCode.BAD_FIELD: (400, INVALID),
    ErrorCode.BAD_AUDIO: (400, INVALID),
    ErrorCode.AUDIO_TOO_LARGE: (413, INVALID),
    ErrorCode.TIMEOUT: (408, INVALID),
    ErrorCode.OVERLOADED: (503, SERVER),
    ErrorCode.MODEL_UNAVAILABLE: (503, SERVER),
    ErrorCode.SHUTTING_DOWN: (503, SERVER),
    ErrorCode.CANCELLED: (499, INVALID),
    ErrorCode.INTERNAL: (500, SERVER),
}
# Which form field a whisperd error is about, for ``param``.
PARAM_OF_CODE = {ErrorCode.BAD_AUDIO: "file", ErrorCode.AUDIO_TOO_LARGE: "file"}
INTERNAL_MESSAGE = "the transcription failed inside whisperd; its log (journalctl) says why"


class ApiError(Exception):
    """An error answered to the client as OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.kind = kind or (SERVER if status >= 500 else INVALID)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def from_whisperd(code: str, message: str) -> ApiError:
    """A whisperd error reply (the Unix protocol's code and message) as an ApiError."""
    status, kind = STATUS_OF_CODE.get(code, (500, SERVER))
    if code == ErrorCode.INTERNAL:
        message = INTERNAL_MESSAGE  # its text may name paths or library internals
    headers = {"Retry-After": "1"} if status == 503 else None
    return ApiError(status, message, code, PARAM_OF_CODE.get(code), kind, headers)


def bad_field(param: str, message: str) -> ApiError:
    return ApiError(400, message, "invalid_value", param)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as OpenAI's error object: ours, aiohttp's (404, 405, 413, a
    malformed body) and unexpected ones (logged here, answered 500 without details)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect or the like: aiohttp's own answer
        return ApiError(exc.status, reason_of(exc), code_of_status(exc.status)).response()
    except Exception:  # noqa: BLE001 - no traceback reaches a client; it goes to the log
        log.exception("http: %s %s failed unexpectedly", request.method, request.path)
        return ApiError(500, "internal error in whisperd; its log says why", "internal").response()


def reason_of(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "no such endpoint (whisperd serves /v1/audio/transcriptions, /v1/models, /health)"
    if exc.status == 405:
        return "method not allowed on this endpoint"
    text = exc.text or ""
    # aiohttp's own texts are short and safe ("400: Bad Request"); keep them one line.
    return text.splitlines()[0][:200] if text else exc.reason


def code_of_status(status: int) -> str:
    return {404: "unknown_url", 405: "method_not_allowed", 413: "audio_too_large"}.get(
        status, "invalid_request"
    )


def sse_error(error: ApiError) -> bytes:
    """An error after a stream began: one event OpenAI's client raises as an APIError."""
    return b"data: " + json.dumps(error.body()).encode() + b"\n\n"
