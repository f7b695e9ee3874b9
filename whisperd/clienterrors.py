"""What can go wrong for a whisperd client, and whisperctl's exit status for each.

Standard library only: whisperctl imports this on every run.
"""

from __future__ import annotations

from typing import Any

# Exit codes of whisperctl, documented in docs/protocol.md and the README.

EXIT_OK = 0
EXIT_REQUEST_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_TIMEOUT = 4
EXIT_PROTOCOL = 5


class ClientError(Exception):
    exit_code = EXIT_REQUEST_FAILED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DaemonUnavailable(ClientError):
    exit_code = EXIT_UNAVAILABLE


class DaemonTimeout(ClientError):
    exit_code = EXIT_TIMEOUT


class ProtocolMismatch(ClientError):
    exit_code = EXIT_PROTOCOL


class UntrustedDaemon(DaemonUnavailable):
    """The socket, its directory or the process behind it is not our own (whisperd.runtime)."""


# Error codes that say "not now, not here": the request itself was fine.
UNAVAILABLE_CODES = frozenset(
    {"too_many_connections", "forbidden", "shutting_down", "remote_unavailable"}
)


def reply_error(message: dict[str, Any]) -> ClientError:
    """The exception for one of the daemon's error replies."""
    code = str(message.get("code"))
    text = str(message.get("message"))
    if code == "unsupported_version":
        return ProtocolMismatch(code, text)
    if code in UNAVAILABLE_CODES:
        return DaemonUnavailable(code, text)
    return ClientError(code, text)


def too_large(limit: int) -> ClientError:
    return ClientError(
        "audio_too_large",
        f"the audio is over whisperd's limit of {limit} bytes per request "
        "(daemon.max_audio_bytes); nothing more was sent",
    )


class DaemonConfigError(ClientError):
    """The daemon we started refused its configuration (it exited with status 2)."""

    exit_code = EXIT_USAGE
