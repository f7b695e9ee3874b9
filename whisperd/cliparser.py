"""whisperctl's command line: its options and commands, each value checked by argparse
(a bad one is a usage error, status 2, never a traceback). Standard library only."""

from __future__ import annotations

import argparse
import math

from whisperd import __version__
from whisperd.protocol import MAX_BEAM_SIZE
from whisperd.statusfmt import FORMATS

MAX_TIMEOUT = 7 * 24 * 3600.0  # a week; far larger overflows the socket's timeout


def positive_seconds(value: str) -> float:
    """``--timeout``: a finite number of seconds above 0 (argparse reports the rest)."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0, at most {MAX_TIMEOUT:g}, not {value!r}"
        )
    return seconds


def beam_size(value: str) -> int:
    """``--beam-size``: 1..MAX_BEAM_SIZE, as the daemon accepts."""
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= size <= MAX_BEAM_SIZE:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_BEAM_SIZE}, not {size}")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisperctl",
        description="Local speech-to-text: talk to the whisperd daemon.",
        epilog="Exit status: 0 ok, 1 request failed, 2 usage or configuration, "
        "3 daemon unavailable, 4 timed out, 5 protocol mismatch.",
    )
    parser.add_argument("--version", action="version", version=f"whisperctl {__version__}")
    parser.add_argument(
        "--socket",
        help="daemon socket (default: $WHISPERD_SOCKET, daemon.socket_path, "
        "$XDG_RUNTIME_DIR/whisperd.sock)",
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, help="seconds to wait for an answer (above 0)"
    )
    parser.add_argument("--config", help="configuration file")
    parser.add_argument(
        "--no-autostart",
        action="store_true",
        help="do not start whisperd when nothing answers",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    transcribe = commands.add_parser("transcribe", help="print the text of audio files")
    transcribe.add_argument("files", nargs="+", metavar="FILE", help="'-': standard input")
    transcribe.add_argument(
        "--live",
        action="store_true",
        help="with '-': stream raw s16le 16 kHz mono PCM (or a WAV stream) from stdin "
        "and print each piece of text on its own line as soon as it is final",
    )
    transcribe.add_argument("--json", action="store_true", help="full results, one JSON per line")
    transcribe.add_argument("--language", help="language code (default: detect)")
    transcribe.add_argument(
        "--beam-size",
        type=beam_size,
        metavar=f"1..{MAX_BEAM_SIZE}",
        help="hypotheses the decoder keeps (default: the daemon's, 5)",
    )
    transcribe.add_argument("--initial-prompt", help="words to steer spelling (names, jargon)")
    transcribe.add_argument("--no-vad", action="store_true", help="do not skip silence with VAD")
    transcribe.add_argument(
        "--without-timestamps", action="store_true", help="faster; segments lose their times"
    )
    transcribe.add_argument(
        "--fast",
        action="store_true",
        help="encode 1-30 s files at their real length, not a padded 30 s window "
        "(dictation's fast path; see docs/fastpath.md)",
    )
    transcribe.add_argument(
        "--raw",
        action="store_true",
        help="the model's text as it is: no replacements, spoken punctuation or hook "
        "from [text] (the vocabulary is still sent; docs/text.md)",
    )
    transcribe.add_argument(
        "--vocabulary",
        action="append",
        metavar="WORD",
        help="a word or name the model should expect, added to text.vocabulary (repeatable)",
    )

    status = commands.add_parser("status", help="model, device, idle timeout, requests served")
    status.add_argument(
        "--follow",
        action="store_true",
        help="instead: whisperd-keys's dictation state, one line per change, for bars "
        "(never starts whisperd; docs/keys.md)",
    )
    status.add_argument("--format", choices=FORMATS, help="with --follow: the lines (json)")
    status.add_argument(
        "--text",
        action="store_true",
        help="with --follow: the text dictated so far (needs [keys] status_text = true)",
    )
    status.add_argument(
        "--once",
        action="store_true",
        help="with --follow: print the current state once and exit (for widgets that poll)",
    )
    commands.add_parser("load", help="load the model now (warm up)")
    commands.add_parser("unload", help="release the model's memory")
    commands.add_parser(
        "stop",
        help="end whisperd; the next request starts it again (and reads the configuration "
        "again: a running whisperd keeps the one it started with)",
    )
    commands.add_parser("ping", help="check that whisperd answers")
    commands.add_parser("doctor", help="check what dictation needs and say how to fix it")
    dictate = commands.add_parser(
        "dictate",
        help="start, stop, toggle or cancel dictation in a running whisperd-keys "
        "(for desktop shortcuts; docs/keys.md)",
    )
    dictate.add_argument("action", choices=["start", "stop", "toggle", "cancel"])
    return parser
