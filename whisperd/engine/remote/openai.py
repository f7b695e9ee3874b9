"""An OpenAI-compatible remote: ``POST {base}/audio/transcriptions``, multipart.

Built on aiohttp's client: the same library the daemon's HTTP front serves with (one
HTTP stack in the daemon, not two), asyncio-native (the request waits on the event loop,
not on the model's worker thread), with TLS verification on by default against the
system's certificates, per-request timeouts, and a body read in pieces so that an answer
past ``MAX_ANSWER_BYTES`` is refused without being held. Compression is declined and not
decoded (``Accept-Encoding: identity``, ``auto_decompress=False``): the size read is the
size received, and a small compressed bomb cannot grow in memory. Redirects are never
followed: a 3xx would otherwise send the user's audio (307/308) or a request (301/302/
303) to wherever the remote points, and take that host's answer as the transcript.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from whisperd.engine.remote.common import (
    MAX_ANSWER_BYTES,
    RemoteUnavailable,
    answer_segments,
    read_token,
    transcription,
    wav_bytes,
)
from whisperd.engine.remote.target import Target
from whisperd.engine.samples import SAMPLE_RATE

if TYPE_CHECKING:
    import aiohttp

    from whisperd.engine import Transcription
    from whisperd.engine.samples import Samples

log = logging.getLogger("whisperd.remote")


class OpenAIRemote:
    def __init__(self, target: Target, model: str, token_file: str, timeout: float) -> None:
        self.target = target
        self.model = model
        self.token_file = token_file
        self.timeout = timeout

    async def transcribe(self, samples: Samples, options: dict[str, Any]) -> Transcription:
        """The remote's transcription of 16 kHz ``samples``; RemoteUnavailable otherwise.

        verbose_json first (segments with times); a server that refuses it with 400 or
        422 (some vLLM versions) is asked once more for plain json."""
        token = read_token(self.token_file)
        duration = samples.size / SAMPLE_RATE
        status, body = await self._post(samples, options, token, "verbose_json")
        if status in (400, 422):
            log.info("the remote refused verbose_json (HTTP %d): asking for json", status)
            status, body = await self._post(samples, options, token, "json")
        if status != 200:
            raise RemoteUnavailable("http_status", f"answered HTTP {status}{_error_of(body)}")
        return parse_answer(body, duration)

    async def _post(
        self, samples: Samples, options: dict[str, Any], token: str | None, answer_format: str
    ) -> tuple[int, bytes]:
        import aiohttp

        form = self._form(samples, options, answer_format)
        headers = {"Accept-Encoding": "identity", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
                session.post(
                    self.target.transcriptions_url,
                    data=form,
                    headers=headers,
                    allow_redirects=False,  # the audio goes to remote_url and nowhere else
                ) as answer,
            ):
                refuse_redirect(answer.status, answer.headers.get("Location", ""))
                return answer.status, await read_bounded(answer)
        except RemoteUnavailable:
            raise
        except TimeoutError:
            raise RemoteUnavailable(
                "timeout", f"no answer within daemon.remote_timeout = {self.timeout:g} s"
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            # TLS verification is on (the system's certificates): never turned off here.
            raise RemoteUnavailable(
                "tls", f"the server's certificate is not trusted: {_short(exc.certificate_error)}"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise RemoteUnavailable("refused", f"cannot connect: {exc.strerror or exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RemoteUnavailable("dropped", f"the exchange failed: {_short(exc)}") from None

    def _form(
        self, samples: Samples, options: dict[str, Any], answer_format: str
    ) -> aiohttp.FormData:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("file", wav_bytes(samples), filename="audio.wav", content_type="audio/wav")
        form.add_field("model", self.model)
        form.add_field("response_format", answer_format)
        if language := options.get("language"):
            form.add_field("language", str(language))
        if prompt := prompt_of(options):
            form.add_field("prompt", prompt)
        return form


def prompt_of(options: dict[str, Any]) -> str:
    """OpenAI's ``prompt``: the request's earlier text, or its vocabulary as a list of
    words (how OpenAI's documentation suggests spelling names)."""
    if options.get("initial_prompt"):
        return str(options["initial_prompt"])
    vocabulary = options.get("vocabulary") or []
    return ", ".join(str(word) for word in vocabulary)


def refuse_redirect(status: int, location: str) -> None:
    """RemoteUnavailable for a redirect (HTTP 3xx): whisperd goes only where remote_url
    says; the user decides whether the redirect's target is a server to trust."""
    if not 300 <= status < 400:
        return
    if not location:
        raise RemoteUnavailable("redirect", f"answered a redirect (HTTP {status}) to nowhere")
    base = location.removesuffix("/audio/transcriptions")
    raise RemoteUnavailable(
        "redirect",
        f"answered a redirect (HTTP {status}) to {printable(location)}, which whisperd "
        f"does not follow; if you trust that server, set daemon.remote_url = "
        f'"{printable(base)}"',
    )


async def read_bounded(answer: aiohttp.ClientResponse) -> bytes:
    """The body, or RemoteUnavailable when it is (or says it will be) too large."""
    declared = answer.content_length
    if declared is not None and declared > MAX_ANSWER_BYTES:
        raise RemoteUnavailable("too_large", f"announced an answer of {declared} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise RemoteUnavailable("too_large", f"answered more than {MAX_ANSWER_BYTES} bytes")
        parts.append(chunk)
    return b"".join(parts)


def parse_answer(body: bytes, duration: float) -> Transcription:
    """OpenAI's json or verbose_json answer as a Transcription; garbage is refused."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise RemoteUnavailable("garbage", "answered something that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise RemoteUnavailable("garbage", "answered JSON without a text")
    segments = None
    if "segments" in data and data["segments"] is not None:
        segments = answer_segments(data["segments"], duration)
        if segments is None:
            raise RemoteUnavailable("garbage", "answered segments whisperd cannot read")
    language = data.get("language")
    language = language if isinstance(language, str) and len(language) <= 32 else ""
    return transcription(data["text"], segments, _language_code(language), duration, "remote")


_NAMES = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it"}


def _language_code(language: str) -> str:
    """verbose_json names the language ("english") where whisperd uses codes ("en")."""
    return _NAMES.get(language.lower(), language.lower())


def _error_of(body: bytes) -> str:
    """OpenAI's error message from an error answer, shortened; "" when there is none."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f": {printable(message)}" if isinstance(message, str) else ""


def _short(exc: BaseException) -> str:
    return printable(str(exc) or type(exc).__name__)


def printable(text: str) -> str:
    """A remote's words for a log line or an error reply: one line, 200 characters."""
    return "".join(c if c.isprintable() else " " for c in text[:200])
