"""whisperd: the entry point of the daemon. Arguments, logging, the BLAS setting, then the
daemon itself (whisperd/daemon/, walked through in docs/architecture.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from whisperd import __version__, privacy
from whisperd.config import (
    ConfigError,
    DaemonConfig,
    HttpConfig,
    apply_overrides,
    load_section,
    read_toml,
    socket_path,
)
from whisperd.daemon.lifecycle import EarlySignals, run_daemon
from whisperd.daemon.listener import BadAddress, SocketInUse, open_listener
from whisperd.fronts import FRONT_NAMES, configured_listen
from whisperd.runtime import UnsafeRuntime

log = logging.getLogger("whisperd")


# --- entry point --------------------------------------------------------------------------


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    # Under systemd our stderr is the journal already; JournalHandler adds priorities.
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        try:
            from systemd.journal import JournalHandler

            root.addHandler(JournalHandler(SYSLOG_IDENTIFIER="whisperd"))
            return
        except ImportError:
            pass
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s whisperd %(levelname)s %(message)s"))
    root.addHandler(handler)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="whisperd", description="Local speech-to-text daemon (faster-whisper)."
    )
    parser.add_argument("--config", help="configuration file (default: %(default)s)", default=None)
    parser.add_argument("--socket", help="socket path when not socket-activated")
    parser.add_argument("--idle-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--model", help="model name (tiny.en, large-v3, ...) or path")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--compute-type")
    parser.add_argument("--cpu-threads", type=int)
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--allow-download", action="store_true", default=None)
    parser.add_argument(
        "--debug-log-text",
        action="store_true",
        default=None,
        help="log transcribed text (off by default: text is private)",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    parser.add_argument("--version", action="version", version=f"whisperd {__version__}")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> tuple[DaemonConfig, Path, dict[str, Any]]:
    """The daemon's section with the command line laid over it, its socket path (by the
    one rule every program uses: whisperd.config.socket_path) and the whole file (the
    fronts' sections, checked here too so that a mistake shows at start)."""
    raw = read_toml(args.config)
    config = load_section(raw, "daemon", DaemonConfig)
    load_section(raw, "http", HttpConfig)
    overrides = {
        "idle_timeout": args.idle_timeout,
        "model": args.model,
        "device": args.device,
        "compute_type": args.compute_type,
        "cpu_threads": args.cpu_threads,
        "beam_size": args.beam_size,
        "allow_download": args.allow_download,
        "debug_log_text": args.debug_log_text,
    }
    apply_overrides(config, "daemon", overrides)
    return config, socket_path(args.socket, raw), raw


def stop_blas_spinning() -> None:
    """Make numpy's OpenBLAS threads sleep at once after a call, unless the user chose.

    Must run before numpy is imported. The daemon's numpy work (log-mel features,
    resampling) is small, but OpenBLAS threads keep spinning after each call and take the
    cores from the CTranslate2 encoder that runs right after: on 2 cores a short
    dictation's encode took twice as long (docs/benchmarks.md). The thread count stays
    as it is, so the features, and the text, are the same as in-process faster-whisper's
    (one thread changes the mel filterbank's summation order, and with it some words).
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # the minimum: 2^4 cycles


def main(argv: list[str] | None = None) -> int:
    # First: a stop signal from now on is acted on cleanly, never by dying mid-start.
    early = EarlySignals().install()
    stop_blas_spinning()
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        config, path, raw = build_config(args)
    except ConfigError as exc:
        print(f"whisperd: {exc}", file=sys.stderr)  # stderr is the journal under systemd
        return 2
    except UnsafeRuntime as exc:  # the default socket's directory is not ours
        log.error("%s", exc)
        return 1
    for late in privacy.keep_local(config.allow_download):  # before faster_whisper loads
        log.warning("%s was imported before its telemetry was switched off", late)
    listens = {name: configured_listen(raw, name) for name in FRONT_NAMES}
    try:
        listener = open_listener(path, listens)
    except (SocketInUse, UnsafeRuntime, BadAddress) as exc:
        log.error("%s", exc)
        return 1
    if listener.activated and (raised := config.idle_timeout_when_activated()):
        log.warning("%s", raised)
    return run_daemon(config, listener, early, raw=raw)


if __name__ == "__main__":
    sys.exit(main())
