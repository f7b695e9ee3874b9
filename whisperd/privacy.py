"""Nothing leaves the machine: the telemetry of the libraries whisperd loads, switched off
before any of them is imported.

What this covers, checked on the versions in this project's environment (docs/hardening.md,
"Privacy"):

- **ONNX Runtime** (faster-whisper's Silero VAD). Since 1.29 the Linux wheels carry
  Microsoft's 1DS telemetry: *importing* ``onnxruntime`` creates
  ``$XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime/`` with a persistent ``deviceid``
  and an ``onnxruntime.db`` of queued events (process, OS, CPU, executable path) to upload.
  ``onnxruntime.disable_telemetry_events()`` comes too late for that: the import already
  wrote both files (tested). ``ORT_DISABLE_TELEMETRY=1`` in the environment before the
  import is the full opt-out: no uploader, no device id, no cache (microsoft/onnxruntime
  PR 27379 and 29843).
- **huggingface_hub** (model downloads): ``HF_HUB_DISABLE_TELEMETRY=1``; and
  ``HF_HUB_OFFLINE=1`` unless ``daemon.allow_download`` is set, so no request reaches the
  Hub at all (a cached or bundled model still loads). Both are read when the module is
  imported.
- ``DO_NOT_TRACK=1`` (https://donottrack.sh/) for any other library that honours it.

CTranslate2, PyAV/FFmpeg, NumPy and tqdm send nothing. The variables are also passed to any
child process (the decode worker, for one). They are set unconditionally, overriding the
user's environment: the promise is whisperd's, not an option.
"""

from __future__ import annotations

import os
import sys

TELEMETRY_OFF = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}
OFFLINE = {"HF_HUB_OFFLINE": "1"}

# Modules that read the variables above when they are imported and cannot be told later.
READ_AT_IMPORT = ("onnxruntime",)


def keep_local(allow_download: bool = False) -> list[str]:
    """Switch every known telemetry off (and the Hub off unless downloads are allowed).

    Call it first thing, before anything imports onnxruntime (faster-whisper imports it
    only when the VAD runs). Returns the modules that were already imported, for which
    this came too late; the caller logs them.
    """
    os.environ.update(TELEMETRY_OFF)
    if not allow_download:
        os.environ.update(OFFLINE)
    _tell_the_hub(allow_download)
    return [name for name in READ_AT_IMPORT if name in sys.modules]


def _tell_the_hub(allow_download: bool) -> None:
    """huggingface_hub reads its switches into module constants at import, and importing
    faster_whisper imports it; its code reads the constants at call time, so they can
    still be set when it was imported first."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is None:
        return
    constants.HF_HUB_DISABLE_TELEMETRY = True  # type: ignore[attr-defined]
    if not allow_download:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
