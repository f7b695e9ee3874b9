"""Optional feedback when recording starts and stops: a short sound, a notification.

Both are off by default: a sound in the middle of a meeting or a notification that
covers the text being dictated surprises more than it helps; turn them on with
``feedback_sound`` / ``feedback_notify``. They run as detached helper programs so that a
slow sound server never delays recording.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

log = logging.getLogger(__name__)

_SOUNDS = {
    "start": ("device-added", "/usr/share/sounds/freedesktop/stereo/device-added.oga"),
    "stop": ("device-removed", "/usr/share/sounds/freedesktop/stereo/device-removed.oga"),
    "error": ("dialog-error", "/usr/share/sounds/freedesktop/stereo/dialog-error.oga"),
}


class Feedback:
    def __init__(self, sound: bool = False, notify: bool = False) -> None:
        self.sound = sound
        self.notify = notify

    def started(self) -> None:
        self._play("start")
        self._notify("Recording…", "low")

    def stopped(self) -> None:
        self._play("stop")

    def error(self, message: str) -> None:
        self._play("error")
        self._notify(f"Dictation failed: {message}", "normal")

    def _play(self, event: str) -> None:
        if not self.sound:
            return
        event_id, path = _SOUNDS[event]
        if shutil.which("canberra-gtk-play"):
            self._spawn(["canberra-gtk-play", "-i", event_id])
        elif shutil.which("paplay") and os.path.exists(path):
            self._spawn(["paplay", path])

    def _notify(self, text: str, urgency: str) -> None:
        if self.notify and shutil.which("notify-send"):
            self._spawn(
                ["notify-send", "-a", "whisperd", "-u", urgency, "-t", "1500", "whisperd", text]
            )

    @staticmethod
    def _spawn(argv: list[str]) -> None:
        try:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            log.debug("feedback helper %s failed: %s", argv[0], exc)
