"""The OpenAI-compatible HTTP front (docs/serving.md), on aiohttp:
``POST /v1/audio/transcriptions``, ``GET /v1/models``, ``GET /health``.

It serves one listening socket (whisperd-http.socket's, or its own from ``http.listen``)
and sends its jobs through the daemon's scheduler like a Unix connection. A request
counts as activity for the idle exit from when it is accepted until it is answered;
open keep-alive connections do not. ``/health`` and ``/v1/models`` never touch the model
and do not count either, so a health check cannot keep the daemon up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from whisperd import __version__
from whisperd.config import HttpConfig, load_section
from whisperd.daemon.connection import Scheduler
from whisperd.daemon.listener import is_loopback
from whisperd.fronts import Activity, FrontConfig, FrontRefused, model_name
from whisperd.fronts.accept import Acceptor, OncePer, refuse_now
from whisperd.fronts.http.errors import ApiError, Handler, openai_errors
from whisperd.fronts.http.guard import Guard, token_from_config
from whisperd.fronts.http.server import ConnectionHandler, refusal_bytes
from whisperd.fronts.http.transcribe import Transcription, answer
from whisperd.fronts.http.upload import FORM_OVERHEAD
from whisperd.protocol import ErrorCode

log = logging.getLogger("whisperd")

TRANSCRIPTIONS = "/v1/audio/transcriptions"
# A body aiohttp reads whole (none of ours does: the form streams) stays small.
CLIENT_MAX_SIZE = 64 * 1024
# After refusing a body we did not read, read (and drop) the rest this long at most, so
# the client sees our answer instead of a reset connection; then close.
LINGERING_TIME = 1.0
KEEPALIVE_TIMEOUT = 15.0
# Open connections at once, per request that may be in progress (limits.max_connections):
# room for clients' idle keep-alive connections beside the requests, which are told 429
# over their own cap. Every connection costs a descriptor: the cap keeps a flood of them
# from taking all of the daemon's.
CONNECTIONS_PER_REQUEST = 2
STOPPING = "whisperd is stopping; send the request again (a new whisperd starts)"


class HttpFront:
    name = "http"

    def __init__(self, scheduler: Scheduler, activity: Activity, config: FrontConfig) -> None:
        self.scheduler = scheduler
        self.activity = activity
        self.config = config
        section = load_section(config.raw, "http", HttpConfig)
        self.guard = Guard(token_from_config(section.token_file))
        self.max_body = config.daemon.max_audio_bytes + FORM_OVERHEAD
        self.in_flight: set[Transcription] = set()
        self.stopping = False
        self.runner: web.AppRunner | None = None
        self.acceptor: Acceptor | None = None
        self.faults = OncePer(config.limits.accept_log_interval)

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[openai_errors, self.guarded], client_max_size=CLIENT_MAX_SIZE
        )
        app.router.add_post(TRANSCRIPTIONS, self.transcriptions, expect_handler=self.expect)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        app.router.add_get("/health", self.health)
        return app

    async def start(self, sock: socket.socket) -> None:
        if self.guard.token is None and not is_loopback(sock):
            raise FrontRefused(
                f"http: {sock.getsockname()[0]} can be reached from other machines and no "
                "http.token_file is configured; listen on 127.0.0.1 or configure a token"
            )
        self.runner = web.AppRunner(
            self.app(),
            handle_signals=False,
            handler_cancellation=True,  # a client gone mid-request cancels its job
            shutdown_timeout=self.config.limits.stop_grace,
        )
        await self.runner.setup()
        limits = self.config.limits
        cap = CONNECTIONS_PER_REQUEST * limits.max_connections
        refusal = refusal_bytes(cap)
        self.acceptor = Acceptor(
            "http", sock, self.connection, lambda conn: refuse_now(conn, refusal), cap, limits
        )
        self.acceptor.start()

    def connection(self, release: Callable[[], None]) -> ConnectionHandler:
        """aiohttp's handler of one connection (what its own server would make)."""
        assert self.runner is not None and self.runner.server is not None
        options: dict[str, Any] = {
            "loop": asyncio.get_running_loop(),
            "access_log": None,  # request lines name no text, but nothing needs them
            "lingering_time": LINGERING_TIME,
            "keepalive_timeout": KEEPALIVE_TIMEOUT,
            # A compressed body is refused (415) unread: never inflated, even while the
            # rest of a refused body is read and dropped.
            "auto_decompress": False,
        }
        return ConnectionHandler(self.runner.server, release, self.faults, **options)

    async def stop(self, grace: float) -> None:
        """No new requests; those in flight are told we stop (503) and their jobs dropped;
        connections are closed within ``grace``."""
        self.stopping = True
        if self.acceptor is not None:
            self.acceptor.stop()
        for transcription in list(self.in_flight):
            transcription.give_up(ErrorCode.SHUTTING_DOWN, STOPPING)
        if self.runner is not None:
            await asyncio.wait_for(self.runner.cleanup(), max(grace, 0.1) + 1.0)
            self.runner = None

    # -- checks before anything is read

    @web.middleware
    async def guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.guard.check(request)
        return await handler(request)

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue`` (curl sends it for large files): refuse before the client
        sends its body at all when it may not or when it is too large."""
        try:
            self.guard.check(request)
            self.check_body(request)
        except ApiError as exc:
            return exc.response()
        if request.headers.get("Expect", "").lower() != "100-continue":
            return ApiError(
                417, "only Expect: 100-continue is understood", "expectation_failed"
            ).response()
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    def check_body(self, request: web.Request) -> None:
        """Before the body is read: it is not compressed, and not announced too large."""
        for value in request.headers.getall("Content-Encoding", []):
            if any(coding.strip().lower() not in ("", "identity") for coding in value.split(",")):
                raise ApiError(
                    415,
                    f"Content-Encoding {value[:40]!r} is not accepted: send the form "
                    "uncompressed (audio files are compressed already)",
                    "unsupported_encoding",
                )
        length = request.content_length
        if length is not None and length > self.max_body:
            raise ApiError(
                413,
                f"the upload of {length} bytes is over the limit of "
                f"{self.config.daemon.max_audio_bytes} bytes of audio (daemon.max_audio_bytes)",
                ErrorCode.AUDIO_TOO_LARGE,
                "file",
            )

    # -- endpoints

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        if self.stopping:
            raise ApiError(503, STOPPING, ErrorCode.SHUTTING_DOWN, headers={"Retry-After": "1"})
        self.check_body(request)
        if len(self.in_flight) >= self.config.limits.max_connections:
            raise ApiError(
                429,
                f"whisperd serves at most {self.config.limits.max_connections} requests at once",
                "too_many_requests",
                headers={"Retry-After": "1"},
            )
        transcription = Transcription(self.scheduler, self.config.limits.stalled_stream)
        self.in_flight.add(transcription)
        self.activity.begin()
        try:
            parsed = await transcription.read(request, self.max_body)
            return await answer(request, transcription, parsed)
        except BaseException:
            transcription.give_up()  # refused, failed, or the client went away
            raise
        finally:
            self.in_flight.discard(transcription)
            self.activity.end()

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [self.describe(m) for m in self.model_ids()]}
        )

    async def model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in self.model_ids():
            raise ApiError(404, f"no model {name[:80]!r} here", "model_not_found", "model")
        return web.json_response(self.describe(name))

    def model_ids(self) -> list[str]:
        """whisper-1 (what OpenAI clients ask for) and the configured model: any name is
        accepted in a request, and the daemon's model answers."""
        return list(dict.fromkeys(["whisper-1", model_name(self.config.daemon.model)]))

    def describe(self, model: str) -> dict[str, object]:
        return {"id": model, "object": "model", "created": 0, "owned_by": "whisperd"}

    async def health(self, request: web.Request) -> web.Response:
        status = self.scheduler.status()
        return web.json_response(
            {
                "status": "stopping" if self.stopping else "ok",
                "version": __version__,
                "model_loaded": bool(status.get("model_loaded")),
            }
        )


def make_front(scheduler: Scheduler, activity: Activity, config: FrontConfig) -> HttpFront:
    return HttpFront(scheduler, activity, config)
