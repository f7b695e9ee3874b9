"""The engine: turning 16 kHz samples into text with faster-whisper.

Modules, in the order a request meets them:

- ``samples``: the one ``SAMPLE_RATE`` and ``Samples`` type.
- ``model``: which model (path, cache, bundled, download) on which device, and the
  ``Model`` protocol (what whisperd uses of faster-whisper's ``WhisperModel``).
- ``core``: ``Engine``, one model kept warm, choosing the decoding path per request.
- ``speech``: the VAD cut shared by every path; ``result``: ``Transcription`` and the
  segment helpers every path builds its result with.
- ``fastpath`` (+ ``decoding``, ``guard``): short utterances on an unpadded window.
- ``packing``: several short clips in shared 30 s windows.

Importing this package loads neither numpy nor faster-whisper (``whisperctl doctor`` and
the daemon's entry point import it before they may); ``Samples`` loads numpy on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from whisperd.engine.core import Engine
from whisperd.engine.model import (
    BUNDLED_MODEL_NAME,
    DEFAULT_MODEL_NAME,
    DeviceChoice,
    Model,
    ModelNotFound,
    ResolvedModel,
    bundled_model_path,
    choose_device,
    is_model_dir,
    resolve_model,
)
from whisperd.engine.result import Segment, SegmentCallback, Transcription
from whisperd.engine.samples import SAMPLE_RATE

if TYPE_CHECKING:
    from whisperd.engine.samples import Samples

__all__ = [
    "BUNDLED_MODEL_NAME",
    "DEFAULT_MODEL_NAME",
    "SAMPLE_RATE",
    "DeviceChoice",
    "Engine",
    "Model",
    "ModelNotFound",
    "ResolvedModel",
    "Samples",
    "Segment",
    "SegmentCallback",
    "Transcription",
    "bundled_model_path",
    "choose_device",
    "is_model_dir",
    "resolve_model",
]


def __getattr__(name: str) -> Any:
    if name == "Samples":  # numpy loads at the first run-time use, not at import
        from whisperd.engine import samples

        return samples.Samples
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
