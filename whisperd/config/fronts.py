"""The sections of the fronts other programs speak to: ``[http]`` (docs/serving.md) and
``[wyoming]`` (docs/wyoming.md), and the listen addresses they are given."""

from __future__ import annotations

import os
from dataclasses import dataclass

from whisperd.config.loading import ConfigError


@dataclass
class HttpConfig:
    """The ``[http]`` section: the OpenAI-compatible front (docs/serving.md). Uploads are
    capped by ``daemon.max_audio_bytes``, as on the Unix socket."""

    listen: str = ""  # "127.0.0.1:8765": bound by whisperd itself when not socket-activated
    token_file: str = ""  # a file holding a bearer token; needed to listen beyond loopback

    def validate(self) -> None:
        if self.listen and ":" not in self.listen:
            raise ConfigError("http.listen", f"{self.listen!r} is not host:port")
        if self.token_file and not os.path.isabs(os.path.expanduser(self.token_file)):
            raise ConfigError("http.token_file", "must be an absolute path (or start with ~)")


@dataclass
class WyomingConfig:
    """The ``[wyoming]`` section (docs/wyoming.md): the Wyoming front for Home Assistant."""

    listen: str = ""  # "tcp://127.0.0.1:10300" when not socket-activated; "" = off
    allow_remote: bool = False  # Wyoming has no authentication: loopback only unless set
    streaming: bool = True  # transcript-chunk events from live dictation's commits

    def validate(self) -> None:
        if not self.listen:
            return
        host, _port = split_tcp_address(self.listen, "wyoming.listen")
        if not self.allow_remote and not is_loopback(host):
            raise ConfigError(
                "wyoming.listen",
                f"{host} is not a loopback address; Wyoming has no authentication, so "
                "listening beyond this machine needs wyoming.allow_remote = true",
            )


def split_tcp_address(listen: str, key: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` or ``HOST:PORT`` (an IPv6 host in brackets) as (host, port);
    ConfigError else."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(listen if "://" in listen else f"tcp://{listen}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(key, f"not a tcp://HOST:PORT address: {exc}") from None
    if parts.scheme != "tcp" or not host or port is None or parts.path not in ("", "/"):
        raise ConfigError(key, f"{listen!r} is not a tcp://HOST:PORT address")
    if not 1 <= port <= 65535:
        raise ConfigError(key, "the port must be within 1..65535")
    return host, port


def is_loopback(host: str) -> bool:
    """An address of this machine only: 127.0.0.0/8, ::1 or the name localhost."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere
