"""The whisperd-keys program: hold a key, speak, release, and the words are typed where the
cursor is. Started through whisperd.keys.main, which first checks that the keys extra is there.

Command-line options override the ``[keys]`` section of config.toml (docs/keys.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from evdev import ecodes

from whisperd.config import (
    ConfigError,
    TextConfig,
    control_socket_path,
    load_section,
    socket_path,
)
from whisperd.control.server import ControlServer
from whisperd.keys.audio import (
    AudioRecorder,
    AudioUnavailable,
    ReopeningRecorder,
    SoundDeviceRecorder,
    list_input_devices,
)
from whisperd.keys.config import KeysConfig, apply_overrides, load_keys_config
from whisperd.keys.feedback import Feedback
from whisperd.keys.keyboard import EvdevKeyboardSource, KeyboardSource, list_keyboards
from whisperd.keys.keynames import KeyNameError, key_name
from whisperd.keys.layout import CharMap, LayoutError, detect_layout
from whisperd.keys.service import Client, DictationService
from whisperd.keys.shortcuts import NoKeyboards, ShortcutPolicy
from whisperd.keys.statusfeed import StatusFeed
from whisperd.keys.trigger import Mode, TriggerMachine
from whisperd.keys.typer import Fallback, Typer
from whisperd.keys.virtual import UinputUnavailable, VirtualKeyboard, open_virtual_keyboard
from whisperd.runtime import UnsafeRuntime

log = logging.getLogger("whisperd.keys")

# A freshly created input device is announced to the compositor asynchronously; keys sent
# before it has opened the device are lost.
DEVICE_SETTLE_SECONDS = 0.5

# The trigger machine of trigger = "none" never sees a key; it needs some combo.
NO_KEYS_COMBO = (ecodes.KEY_MAX - 1,)  # a code no keyboard sends

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whisperd-keys",
        description="Push-to-talk dictation: hold the trigger key, speak, release.",
    )
    p.add_argument("--config", help="configuration file (default: the user's config.toml)")
    p.add_argument(
        "--trigger",
        help="trigger key or chord, e.g. insert or KEY_RIGHTCTRL+KEY_SPACE; 'none': read no "
        "keyboard, dictate only through `whisperctl dictate` (desktop shortcuts)",
    )
    p.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        help="hold: record while the trigger is held; toggle: a press starts, the next "
        "stops; auto: hold to talk, or tap to start and tap again to stop",
    )
    p.add_argument("--suppress", choices=["grab", "none"], help="keep the trigger from apps")
    p.add_argument("--keyboard", action="append", dest="keyboards", help="only this device")
    p.add_argument("--audio-device", help="input device, by index or (part of its) name")
    p.add_argument("--layout", help="XKB layout to type with, e.g. de")
    p.add_argument("--variant", help="XKB variant, e.g. dvorak")
    p.add_argument("--xkb-options", help="XKB options, e.g. compose:ralt")
    p.add_argument("--fallback", choices=[f.value for f in Fallback])
    p.add_argument("--type-delay", type=float, help="seconds between key events")
    p.add_argument("--language", help="spoken language, e.g. en (default: detect)")
    p.add_argument("--max-recording", type=float, help="stop recording after this many seconds")
    p.add_argument("--socket", dest="socket_path", help="whisperd socket path")
    p.add_argument("--uinput-backend", choices=["auto", "python-uinput", "evdev"])
    p.add_argument(
        "--debug-log-text", action="store_true", default=None, help="log transcribed text"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    actions = p.add_mutually_exclusive_group()
    actions.add_argument("--list-keyboards", action="store_true", help="list input devices")
    actions.add_argument("--list-audio-devices", action="store_true", help="list microphones")
    actions.add_argument("--show-keys", metavar="TEXT", help="print the key strokes for TEXT")
    actions.add_argument("--type", metavar="TEXT", dest="type_text", help="type TEXT and exit")
    return p


def print_keyboards(found: list[tuple[str, str]]) -> int:
    """``--list-keyboards``: each input device and what whisperd-keys makes of it; none
    at all says so (and where they would be) instead of printing nothing."""
    for path, description in found:
        print(f"{path}  {description}")
    if not found:
        print(
            "no input devices (no /dev/input/event* here: a container, or a remote "
            "session?); whisperd-keys reads the keyboards of the machine it runs on",
            file=sys.stderr,
        )
    return 0


def setup_logging(verbose: bool) -> None:
    # Under systemd the journal adds its own time stamps.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt)


def load_config(args: argparse.Namespace) -> tuple[KeysConfig, TextConfig]:
    """The ``[keys]`` section with the command line on top, and the ``[text]`` rules."""
    from whisperd.config import read_toml

    raw = read_toml(args.config)
    config = load_keys_config(raw)
    text = load_section(raw, "text", TextConfig)
    overrides: dict[str, Any] = {
        key: getattr(args, key)
        for key in (
            "trigger",
            "mode",
            "suppress",
            "keyboards",
            "layout",
            "variant",
            "xkb_options",
            "fallback",
            "type_delay",
            "language",
            "max_recording",
            "socket_path",
            "uinput_backend",
            "debug_log_text",
        )
    }
    overrides["audio_device"] = args.audio_device
    apply_overrides(config, overrides)
    # One rule for every program (whisperd.config.socket_path): keys.socket_path or
    # --socket, then $WHISPERD_SOCKET, then daemon.socket_path, then the runtime dir.
    config.socket_path = str(socket_path(config.socket_path or None, raw))
    config.control_socket = str(control_socket_path(config.control_socket or None, raw))
    return config, text


def make_typer(config: KeysConfig, keyboard: VirtualKeyboard, charmap: CharMap) -> Typer:
    paste = config.paste_codes
    # The letter of a paste shortcut follows the layout (Ctrl+V is on '.' in Dvorak).
    letter = key_name(paste[-1]).removeprefix("KEY_").lower()
    if len(letter) == 1:
        paste = (*paste[:-1], charmap.keysym_stroke(letter, paste[-1]).code)
    return Typer(
        keyboard,
        charmap,
        fallback=Fallback(config.fallback),
        delay=config.type_delay,
        paste_combo=paste,
        debug_log_text=config.debug_log_text,
    )


def client_factory(config: KeysConfig) -> Client:
    from whisperd.client import Client as RealClient

    client: Client = RealClient.connect(
        socket_path=config.socket_path or None, timeout=config.timeout, autostart=True
    )
    return client


def show_keys(charmap: CharMap, text: str) -> int:
    missing = 0
    for char in text:
        stroke = charmap.stroke(char)
        if stroke is None:
            missing += 1
            print(f"{char!r}: not on this layout (fallback)")
        else:
            keys = [key_name(code) for code in (*stroke.modifiers, stroke.code)]
            print(f"{char!r}: {'+'.join(keys)}")
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.list_audio_devices:
            print("\n".join(list_input_devices()) or "no input devices")
            return 0
        config, text = load_config(args)
        if args.list_keyboards:
            return print_keyboards(list_keyboards(config.trigger_codes))
        layout = detect_layout(config.layout, config.variant, options=config.xkb_options)
        charmap = CharMap.for_layout(layout)
        log.info("typing with the XKB layout %s (from %s)", layout, layout.source)
        if args.show_keys is not None:
            return show_keys(charmap, args.show_keys)
        return run(args, config, charmap, text)
    except (ConfigError, KeyNameError) as exc:
        print(f"whisperd-keys: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (LayoutError, UinputUnavailable, AudioUnavailable, UnsafeRuntime) as exc:
        print(f"whisperd-keys: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def run(
    args: argparse.Namespace, config: KeysConfig, charmap: CharMap, text: TextConfig | None = None
) -> int:
    keyboard = open_virtual_keyboard(config.uinput_backend)
    try:
        typer = make_typer(config, keyboard, charmap)
        if args.type_text is not None:
            return type_once(typer, args.type_text)
        recorder = ReopeningRecorder(
            lambda: SoundDeviceRecorder(
                config.audio_device, config.sample_rate, config.keep_open, config.preroll
            ),
            config.sample_rate,
        )
        try:
            service = build_service(config, keyboard, typer, recorder, text)
            serve_control(service, config)
        finally:
            recorder.close()
    finally:
        keyboard.close()  # releases every key it still holds, then destroys the device
    return 0


def serve_control(service: DictationService, config: KeysConfig, signals: bool = True) -> None:
    """Run the service with its control socket (``whisperctl dictate``, status followers);
    ``signals``: stop on SIGTERM/SIGINT/SIGHUP (only the main thread can set that up)."""
    server = ControlServer(Path(config.control_socket), service, allow_text=config.status_text)
    server.start()  # refuses a second whisperd-keys before anything else happens
    try:
        service.status.listeners.append(server.publish)
        service.status.watch_daemon(service.stop_event, lambda: server.followers > 0)
        if signals:
            install_signal_handlers(service)
        if config.reads_keyboards:
            log.info(
                "ready: %s triggers dictation (%s mode, suppression %s); also `whisperctl dictate`",
                config.trigger,
                config.mode,
                config.suppress,
            )
        else:
            log.info("ready: no keyboard is read; dictation through `whisperctl dictate`")
        service.run()
    finally:
        server.close()


def keyboard_source(config: KeysConfig) -> KeyboardSource:
    """The evdev keyboards, or none at all for ``trigger = "none"`` (no /dev/input)."""
    if not config.reads_keyboards:
        return NoKeyboards()
    return EvdevKeyboardSource(
        config.trigger_codes, grab=config.suppress == "grab", only=config.keyboards
    )


def build_service(
    config: KeysConfig,
    keyboard: VirtualKeyboard,
    typer: Typer,
    recorder: AudioRecorder,
    text: TextConfig | None = None,
) -> DictationService:
    # Without a keyboard trigger the machine is never fed a key: it only carries
    # max_recording and the (empty) set of held keys. Any combo will do.
    machine = TriggerMachine(
        combo=config.trigger_codes or NO_KEYS_COMBO,
        mode=Mode(config.mode),
        hold_threshold=config.hold_threshold,
        max_recording=config.max_recording,
    )
    return DictationService(
        machine,
        keyboard_source(config),
        recorder,
        keyboard,
        typer,
        lambda: client_factory(config),
        config,
        Feedback(config.feedback_sound, config.feedback_notify),
        text=text,
        shortcuts=ShortcutPolicy(config.settle, config.shortcut_live_typing),
        status=StatusFeed(config.socket_path, keep_text=config.status_text),
    )


def type_once(typer: Typer, text: str) -> int:
    """``--type``: what the system test uses to check typing without audio."""
    stop = install_stop_flag()
    time.sleep(DEVICE_SETTLE_SECONDS)
    report = typer.type_text(text, cancel=stop)
    log.info(
        "typed %d characters (%d through the fallback, %d skipped)",
        report.typed,
        report.fallback,
        report.skipped,
    )
    time.sleep(DEVICE_SETTLE_SECONDS)  # let the compositor read the last events
    return 0 if not report.skipped else 1


def install_stop_flag() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)
    return stop


def install_signal_handlers(service: DictationService) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        service.stop_event.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
