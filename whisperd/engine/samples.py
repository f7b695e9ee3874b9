"""The one sample rate and the one audio type of whisperd.

Whisper hears 16 kHz mono float32; every decoder output, window, draft and packed clip is
in this form. ``SAMPLE_RATE`` is importable without numpy (the daemon's entry point must
set OpenBLAS up before numpy loads, and whisperctl never loads it); ``Samples`` is
resolved on first use at run time and is a plain alias for the type checker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeAlias

SAMPLE_RATE: Final = 16000
"""Samples per second of all audio the engine sees."""

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Samples: TypeAlias = npt.NDArray[np.float32]
    """16 kHz mono float32 samples in -1..1."""


def duration_of(count: int) -> float:
    """Seconds that ``count`` samples last."""
    return count / SAMPLE_RATE


def sample_count(seconds: float) -> int:
    """Samples in ``seconds`` seconds (rounded down, as slicing needs)."""
    return int(seconds * SAMPLE_RATE)


def __getattr__(name: str) -> Any:
    if name == "Samples":  # numpy loads here, at the first run-time use, not at import
        import numpy as np
        import numpy.typing as npt

        return npt.NDArray[np.float32]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
