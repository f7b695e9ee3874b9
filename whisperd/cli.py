"""whisperctl: transcribe files and look after the daemon from the command line.

Imports stay light (no numpy, no faster-whisper): this runs on every invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from whisperd.client import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Client,
    ClientError,
)
from whisperd.cliparser import build_parser
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
from whisperd.text import Shaper, TextRules, shape_pieces
from whisperd.text.hook import Hook


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
    if args.beam_size is not None:
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


class LanguageCheck:
    """Says once (on stderr) when the text came in another language than ``--language``
    asked for: an English-only model (the default, tiny.en) transcribes English whatever
    is asked, and the daemon's log was the only place that said so."""

    def __init__(self, asked: str | None) -> None:
        self.asked = (asked or "").strip()
        self.said = False

    def __call__(self, result: dict[str, Any]) -> dict[str, Any]:
        got = result.get("language")
        if self.said or not isinstance(got, str) or not got:
            return result
        asked, heard = language_code(self.asked), language_code(got)
        # A name ("english") is not compared: only codes say the same thing both ways.
        if asked and len(asked) <= 3 and asked != heard:
            self.said = True
            why = (
                "the remote server answered so"
                if result.get("engine") == "remote"
                else "an English-only model, such as the default tiny.en, knows no other"
            )
            print(
                f"whisperctl: --language {self.asked} was not used: the text is in {got!r} ({why})",
                file=sys.stderr,
            )
        return result


def language_code(tag: str) -> str:
    """The primary language of a tag, lower case: "en" for "en", "EN", "en-US", "en_US"."""
    return tag.strip().lower().replace("_", "-").split("-")[0]


def cmd_transcribe(client: Client, args: argparse.Namespace, text: TextConfig) -> int:
    try:
        options = transcribe_options(args, text)
    except ProtocolError as exc:
        print(f"whisperctl: --vocabulary: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    shaping = Shaping(text, args.raw)
    language = LanguageCheck(args.language)
    if "-" in args.files or args.live:
        return cmd_transcribe_stdin(client, args, options, shaping, language)
    several = len(args.files) > 1
    failures = 0
    progress = [Progress(path) for path in args.files]
    # All files go out ahead of their results (up to 16 at a time), so the daemon can
    # pack short ones into shared windows; results still come back in order.
    outcomes = client.transcribe_files(args.files, options, progress.__getitem__)
    for index, (path, outcome) in enumerate(zip(args.files, outcomes, strict=True)):
        progress[index].clear()
        if isinstance(outcome, OSError):
            why = str(outcome.strerror or outcome)
            print(f"whisperctl: cannot read {path}: {why}", file=sys.stderr)
            failures += 1
            print_failure_json(args.json, path, "cannot_read", why)
            continue
        if isinstance(outcome, ClientError):
            if outcome.code not in ("bad_audio", "audio_too_large"):
                raise outcome
            print(f"whisperctl: {path}: {outcome.message}", file=sys.stderr)
            failures += 1
            print_failure_json(args.json, path, outcome.code, outcome.message)
            continue
        outcome = shaping.apply(language(outcome))
        if args.json:
            print(json.dumps({"file": path, **outcome}, ensure_ascii=False))
        elif several:
            print(f"{'' if index == 0 else chr(10)}==> {path} <==\n{outcome['text']}")
        else:
            print(outcome["text"])
        sys.stdout.flush()
    return 1 if failures else EXIT_OK


def print_failure_json(wanted: bool, path: str, code: str, message: str) -> None:
    """With ``--json``, a file that failed has its line too, in its place, so that a
    script reading the lines accounts for every file: ``{"file": ..., "error": {"code":
    ..., "message": ...}}`` (the message is also on stderr, as without ``--json``)."""
    if wanted:
        failure = {"file": path, "error": {"code": code, "message": message}}
        print(json.dumps(failure, ensure_ascii=False), flush=True)


def cmd_transcribe_stdin(
    client: Client,
    args: argparse.Namespace,
    options: dict[str, Any],
    shaping: Shaping,
    language: LanguageCheck,
) -> int:
    from whisperd import stdin_audio

    stdin, out = sys.stdin.buffer, sys.stdout
    if args.live:
        shaper = shaping.shaper()
        return stdin_audio.transcribe_live(
            client, options, stdin, out, args.json, shaper, on_result=language
        )

    def shape(result: dict[str, Any]) -> dict[str, Any]:
        return shaping.apply(language(result))

    return stdin_audio.transcribe_whole(client, options, stdin, out, args.json, shape)


def format_status(status: dict[str, Any], socket: str = "") -> str:
    loaded = status.get("model_loaded")
    model = status.get("model") or status.get("configured_model")
    if model == "default":  # not loaded yet: say which model that is
        model = "tiny.en (the default)"
    lines = [
        f"whisperd {status.get('version')} (pid {status.get('pid')}), "
        f"up {status.get('uptime', 0):.0f} s, "
        f"{'socket-activated' if status.get('socket_activated') else 'self-started'}",
        f"model:    {model} "
        + (
            f"loaded on {device_text(status)} in {status.get('load_seconds') or 0:.2f} s"
            if loaded
            else ("loading" if status.get("loading") else "not loaded (loads on first request)")
        ),
        f"requests: {status.get('requests_served')} served, {status.get('queue_length')} queued",
        clients_line(status),
    ]
    if socket:
        lines.append(f"socket:   {socket}")
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
            print(format_status(client.status(), socket))
        elif args.command == "load":
            print(load_line(client.load()))
        elif args.command == "unload":
            print(unload_line(client.unload()))
        elif args.command == "ping":
            client.ping()
            print("pong")
    return EXIT_OK


def device_text(reply: dict[str, Any]) -> str:
    """ "cpu (int8, 1 thread)": the device, compute type and, when not CTranslate2's
    default (0), the CPU threads the model runs with ("decoder 1 thread" when only the
    decoder runs with its own count)."""
    on_cpu = reply.get("device") == "cpu"
    threads, decoder = reply.get("cpu_threads"), reply.get("decoder_threads")
    count = f", {_threads_text(threads)}" if threads and on_cpu else ""
    if decoder and on_cpu:
        count += f", decoder {_threads_text(decoder)}"
    return f"{reply.get('device')} ({reply.get('compute_type')}{count})"


def _threads_text(count: Any) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


def load_line(reply: dict[str, Any]) -> str:
    """What ``whisperctl load`` says: loaded now, or already (``waited`` 0: no load ran
    for this request, the model was in memory)."""
    where = f"{reply.get('model')} on {device_text(reply)}"
    seconds = reply.get("load_seconds", 0)
    if not reply.get("waited"):
        return f"model {where} was already loaded (it took {seconds:.2f} s)"
    return f"model {where} loaded in {seconds:.2f} s"


def unload_line(reply: dict[str, Any]) -> str:
    if reply.get("pending"):
        return "the model will be unloaded when the running transcription finishes"
    return "model unloaded" if reply.get("was_loaded") else "no model was loaded"


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
    if args.command == "transcribe" and args.live and args.files != ["-"]:
        print(
            "whisperctl: --live reads standard input: whisperctl transcribe --live - "
            "(a file: drop --live)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.command == "transcribe" and "-" in args.files and args.files != ["-"]:
        print("whisperctl: '-' (standard input) takes no other file", file=sys.stderr)
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
        if args.command == "stop":
            from whisperd.clistop import stop

            path = str(socket_path(args.socket, raw))
            return stop(path, args.timeout or config.timeout, config.connect_timeout)
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
