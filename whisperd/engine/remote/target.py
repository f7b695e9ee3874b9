"""Where a remote engine is: ``daemon.remote_url`` parsed and checked (no network here).

Two kinds of remote speak the protocols the ecosystem's servers speak:
``https://host/v1`` (or ``http://``) is an OpenAI-compatible server (vLLM,
faster-whisper-server, whisper.cpp's server, LocalAI, whisperd's own HTTP front), and
``wyoming://host:port`` a Wyoming server (wyoming-faster-whisper, Home Assistant's).
Imported by whisperd.config, so nothing here imports aiohttp or numpy.
"""

from __future__ import annotations

import importlib.util
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

OPENAI = "openai"
WYOMING = "wyoming"
DEFAULT_PORTS = {"https": 443, "http": 80}


class BadTarget(ValueError):
    """A remote_url whisperd cannot use; the message says why."""


@dataclass(frozen=True)
class Target:
    kind: str  # OPENAI or WYOMING
    scheme: str  # https, http or wyoming
    host: str
    port: int
    path: str  # OpenAI: the API's base path ("/v1"); Wyoming: ""

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def token_in_clear(self) -> bool:
        """Whether a bearer token sent here would cross a network unencrypted."""
        return not self.tls and not self.loopback

    @property
    def transcriptions_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}/audio/transcriptions"

    def describe(self) -> str:
        """The target for logs and status: scheme, host and port (a URL's path, query
        and anything else are left out)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(url: str) -> Target:
    """``url`` as a Target; BadTarget when it is not one whisperd can use."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BadTarget(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http", "wyoming"):
        raise BadTarget("must start with https://, http:// (OpenAI-compatible) or wyoming://")
    if parts.username is not None or parts.password is not None:
        # A password in the URL would be logged and shown by status: use remote_token_file.
        raise BadTarget("must not hold a user or password (use daemon.remote_token_file)")
    if parts.query or parts.fragment:
        raise BadTarget("must not have a query or fragment")
    host = parts.hostname
    if not host:
        raise BadTarget("names no host")
    if scheme == "wyoming":
        if port is None:
            raise BadTarget("wyoming:// needs a port (wyoming://host:10300)")
        if parts.path not in ("", "/"):
            raise BadTarget("wyoming:// takes no path")
        return Target(WYOMING, scheme, host, port, "")
    path = parts.path.rstrip("/")
    return Target(OPENAI, scheme, host, port or DEFAULT_PORTS[scheme], path)


def remote_problem(
    engine: str, url: str, token_file: str, fallback: str, timeout: float, model: str
) -> tuple[str, str] | None:
    """The first thing wrong with the [daemon] section's remote-engine keys, as
    (key, message), or None (whisperd.config raises it as a ConfigError)."""
    if engine not in ("local", "remote"):
        return "engine", "must be local or remote"
    if fallback not in ("local", "none"):
        return "fallback", "must be local or none"
    if not 0 < timeout <= 3600:
        return "remote_timeout", "must be within 0..3600 s"
    if not model.strip():
        return "remote_model", "must name the remote's model"
    if engine != "remote":
        return None
    if not url:
        return "remote_url", "is needed with engine = remote"
    try:
        target = parse_target(url)
    except BadTarget as exc:
        return "remote_url", str(exc)
    if token_file and target.kind == WYOMING:
        return (
            "remote_token_file",
            "Wyoming has no authentication: a wyoming:// remote takes no token",
        )
    if token_file and target.token_in_clear:
        return (
            "remote_token_file",
            "a token would cross the network in clear text: use https:// (or a loopback address)",
        )
    client = "aiohttp" if target.kind == OPENAI else "wyoming"
    if importlib.util.find_spec(client) is None:
        return "engine", f"a remote engine needs {client}: pip install 'whisperd[serve]'"
    return None
