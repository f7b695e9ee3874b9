"""whisperctl: transcribe files and look after the daemon from the command line.

Imports stay light (no numpy, no faster-whisper): this runs on every invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from whisperd import __version__
from whisperd.client import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Client,
    ClientError,
)
from whisperd.config import (
    ClientConfig,
    ConfigError,
    TextConfig,
    load_section,
    read_toml,
    socket_path,
)
from whisperd.protocol import MAX_VOCABULARY_ENTRIES, ProtocolError, check_vocabulary
from whisperd.runtime import UnsafeRuntime
from whisperd.statusfmt import FORMATS
from whisperd.text import Shaper, TextRules, shape_pieces
from whisperd.text.hook import Hook


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
    parser.add_argument("--timeout", type=float, help="seconds to wait for an answer")
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
    transcribe.add_argument("--beam-size", type=int)
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
    commands.add_parser("ping", help="check that whisperd answers")
    commands.add_parser("doctor", help="check what dictation needs and say how to fix it")
    dictate = commands.add_parser(
        "dictate",
        help="start, stop, toggle or cancel dictation in a running whisperd-keys "
        "(for desktop shortcuts; docs/keys.md)",
    )
    dictate.add_argument("action", choices=["start", "stop", "toggle", "cancel"])
    return parser


def transcribe_options(args: argparse.Namespace, text: TextConfig | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    configured: list[str] = []
    if text is not None:
        # --raw: no spoken punctuation, so no command phrases to hint either
        configured = text.vocabulary if args.raw else text.request_vocabulary()
    given = check_vocabulary(args.vocabulary or [])  # this run's words come first
    vocabulary = given + [word for word in configured if word not in given]
    if vocabulary:
        options["vocabulary"] = vocabulary[:MAX_VOCABULARY_ENTRIES]
    if args.language:
        options["language"] = args.language
    if args.beam_size:
        options["beam_size"] = args.beam_size
    if args.initial_prompt:
        options["initial_prompt"] = args.initial_prompt
    if args.no_vad:
        options["vad_filter"] = False
    if args.without_timestamps:
        options["without_timestamps"] = True
    if args.fast:
        options["fast_short_audio"] = True
    return options


class Progress:
    """Shows how far a long file has got, on stderr, only when stderr is a terminal."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, segment: dict[str, Any]) -> None:
        if not self.enabled:
            return
        seconds = int(float(segment.get("end", 0)))
        sys.stderr.write(f"\r{self.name}: {seconds // 60:02d}:{seconds % 60:02d} transcribed")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class Shaping:
    """[text]'s rules and hook applied to each file's result, unless ``--raw``."""

    def __init__(self, text: TextConfig, raw: bool) -> None:
        self.rules: TextRules | None = None if raw else text.rules()
        self.hook: Hook | None = None if raw else text.make_hook()

    @property
    def active(self) -> bool:
        return self.rules is not None and (self.rules.active or self.hook is not None)

    def shaper(self) -> Shaper | None:
        """For ``--live``: the pieces shaped one by one, the hook on each piece."""
        if not self.active or self.rules is None:
            return None
        return Shaper(self.rules, post=self.hook)

    def apply(self, result: dict[str, Any]) -> dict[str, Any]:
        if not self.active or self.rules is None:
            return result
        model_text = str(result.get("text", ""))
        segments = result.get("segments")
        pieces = (
            [str(s.get("text", "")) for s in segments if isinstance(s, dict)]
            if (isinstance(segments, list) and segments)
            else [model_text]
        )
        text = shape_pieces(pieces, self.rules)
        if self.hook is not None:
            text = self.hook(text)
        return {**result, "text": text, "raw_text": model_text}


def cmd_transcribe(client: Client, args: argparse.Namespace, text: TextConfig) -> int:
    try:
        options = transcribe_options(args, text)
    except ProtocolError as exc:
        print(f"whisperctl: --vocabulary: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    shaping = Shaping(text, args.raw)
    if "-" in args.files or args.live:
        return cmd_transcribe_stdin(client, args, options, shaping)
    several = len(args.files) > 1
    failures = 0
    progress = [Progress(path) for path in args.files]
    # All files go out ahead of their results (up to 16 at a time), so the daemon can
    # pack short ones into shared windows; results still come back in order.
    outcomes = client.transcribe_files(args.files, options, progress.__getitem__)
    for index, (path, outcome) in enumerate(zip(args.files, outcomes, strict=True)):
        progress[index].clear()
        if isinstance(outcome, OSError):
            print(f"whisperctl: cannot read {path}: {outcome.strerror or outcome}", file=sys.stderr)
            failures += 1
            continue
        if isinstance(outcome, ClientError):
            if outcome.code not in ("bad_audio", "audio_too_large"):
                raise outcome
            print(f"whisperctl: {path}: {outcome.message}", file=sys.stderr)
            failures += 1
            continue
        outcome = shaping.apply(outcome)
        if args.json:
            print(json.dumps({"file": path, **outcome}, ensure_ascii=False))
        elif several:
            print(f"{'' if index == 0 else chr(10)}==> {path} <==\n{outcome['text']}")
        else:
            print(outcome["text"])
        sys.stdout.flush()
    return 1 if failures else EXIT_OK


def cmd_transcribe_stdin(
    client: Client, args: argparse.Namespace, options: dict[str, Any], shaping: Shaping
) -> int:
    from whisperd import stdin_audio

    stdin, out = sys.stdin.buffer, sys.stdout
    if args.live:
        shaper = shaping.shaper()
        return stdin_audio.transcribe_live(client, options, stdin, out, args.json, shaper)
    return stdin_audio.transcribe_whole(client, options, stdin, out, args.json, shaping.apply)


def format_status(status: dict[str, Any]) -> str:
    loaded = status.get("model_loaded")
    model = status.get("model") or status.get("configured_model")
    lines = [
        f"whisperd {status.get('version')} (pid {status.get('pid')}), "
        f"up {status.get('uptime', 0):.0f} s, "
        f"{'socket-activated' if status.get('socket_activated') else 'self-started'}",
        f"model:    {model} "
        + (
            f"loaded on {status.get('device')} ({status.get('compute_type')}) "
            f"in {status.get('load_seconds') or 0:.2f} s"
            if loaded
            else ("loading" if status.get("loading") else "not loaded (loads on first request)")
        ),
        f"requests: {status.get('requests_served')} served, {status.get('queue_length')} queued",
        clients_line(status),
    ]
    idle = status.get("idle_exit_in")
    lines.append(
        f"idle:     exits {idle:.0f} s after the last client leaves"
        if idle is not None
        else "idle:     busy; the idle timer starts when work is done"
    )
    return "\n".join(lines)


def clients_line(status: dict[str, Any]) -> str:
    """Who is being served: Unix socket clients (this whisperctl among them) and, from a
    daemon that reports them, the HTTP/Wyoming fronts' requests in flight."""
    line = f"clients:  {status.get('connections')} on the Unix socket (this one included)"
    fronts = status.get("front_requests")
    if isinstance(fronts, int) and not isinstance(fronts, bool):
        line += f", {fronts} HTTP/Wyoming request(s) in flight"
    return line


def run(args: argparse.Namespace, config: ClientConfig, text: TextConfig, socket: str) -> int:
    with Client.connect(
        socket,
        timeout=args.timeout or config.timeout,
        autostart=config.autostart and not args.no_autostart,
        connect_timeout=config.connect_timeout,
        config=args.config,
    ) as client:
        if args.command == "transcribe":
            return cmd_transcribe(client, args, text)
        if args.command == "status":
            print(format_status(client.status()))
        elif args.command == "load":
            reply = client.load()
            print(
                f"model {reply.get('model')} loaded on {reply.get('device')} "
                f"({reply.get('compute_type')}) in {reply.get('load_seconds', 0):.2f} s"
            )
        elif args.command == "unload":
            reply = client.unload()
            print(
                "the model will be unloaded when the running transcription finishes"
                if reply.get("pending")
                else "model unloaded"
            )
        elif args.command == "ping":
            client.ping()
            print("pong")
    return EXIT_OK


def output_gone() -> int:
    """Our reader closed the pipe (`whisperctl status | head -1`): stop quietly. As the
    Python docs advise, stdout then points at /dev/null so the flush at exit cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def follow_status(args: argparse.Namespace, raw: dict[str, Any]) -> int:
    from whisperd.config import control_socket_path
    from whisperd.statusfollow import follow

    return follow(control_socket_path(None, raw), args.format or "json", args.text, args.once)


def dictate_command(args: argparse.Namespace) -> int:
    """``whisperctl dictate``: never touches whisperd, only whisperd-keys' control socket."""
    from whisperd.config import control_socket_path
    from whisperd.control.command import run_dictate

    try:
        path = control_socket_path(None, read_toml(args.config))
    except (ConfigError, UnsafeRuntime) as exc:
        print(f"whisperctl: {exc}", file=sys.stderr)
        return 1
    return run_dictate(path, args.action)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "status" and (args.format or args.text or args.once) and not args.follow:
        print("whisperctl: status --format, --text and --once need --follow", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "transcribe" and (args.live or "-" in args.files) and args.files != ["-"]:
        print("whisperctl: '-' (standard input) and --live take no other file", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "doctor":
        # Before reading the configuration: a broken one is one of doctor's findings.
        from whisperd.doctor import run_doctor

        return int(run_doctor(args.config))
    if args.command == "dictate":
        return dictate_command(args)
    try:
        raw = read_toml(args.config)
        config = load_section(raw, "client", ClientConfig)
        text = load_section(raw, "text", TextConfig)
    except ConfigError as exc:
        print(f"whisperctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "status" and args.follow:
            return follow_status(args, raw)
        status = run(args, config, text, str(socket_path(args.socket, raw)))
        sys.stdout.flush()  # a reader that left shows here, not at exit
        return status
    except BrokenPipeError:
        return output_gone()
    except UnsafeRuntime as exc:  # the runtime directory is not ours: never use it
        print(f"whisperctl: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ClientError as exc:
        print(f"whisperctl: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
