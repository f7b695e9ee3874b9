"""One model whose encoder and decoder run with different CPU thread counts.

On some machines (2-vCPU guests above all) more threads halve the encoder's time but
make every decoder step slower, because a step is a row of small matrix products whose
threads must meet after each one. CTranslate2 fixes a model instance's thread count when
it is loaded, so the best of both takes two instances: the encoder runs on one with
CTranslate2's own thread count, every decoder step on one with a single thread. The
encoder's output is plain memory on the CPU that the other instance decodes as it would
its own (``generate`` accepts encoded features). Measured on a 2-vCPU AMD EPYC (Zen 4),
jfk's 11 s on the 30 s window with 16 tokens of context forced, best of 5: the default
(two threads) encoded in 213-218 ms and decoded in 265-322 ms, one thread 413 and 166 ms,
the split 213-228 and 165-201 ms (378-430 ms in all, against 478-540 and 580), with the
same tokens. ``threads.py`` decides where the split serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A second instance holds a second copy of the weights: it is only made when the model
# file is at most this share of the memory available, so that on a small machine a large
# model never costs twice its memory for a faster decoder step.
MAX_MEMORY_SHARE = 0.1


class SplitWhisper:
    """A ``ctranslate2.models.Whisper`` look-alike: ``encode`` on ``encoder`` (many
    threads), everything else (``generate``, ``align``, ``detect_language``, the
    model's attributes) on ``decoder`` (one thread). faster-whisper and the fast path
    encode before they decode, so every decode takes both at their best."""

    def __init__(self, encoder: Any, decoder: Any) -> None:
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        return self.encoder.encode(*args, **kwargs)

    def unload_model(self, *args: Any, **kwargs: Any) -> None:
        for instance in (self.encoder, self.decoder):
            instance.unload_model(*args, **kwargs)

    def load_model(self, *args: Any, **kwargs: Any) -> None:
        for instance in (self.encoder, self.decoder):
            instance.load_model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only called for what this class does not define: the decoder's methods and the
        # model's attributes (is_multilingual, n_mels, device, ...), the same on both.
        # Special names, and the two instances themselves while a copy is being built
        # (before __init__ ran), are not looked up on the decoder: no endless recursion.
        if name.startswith("__") or name in ("encoder", "decoder"):
            raise AttributeError(name)
        return getattr(self.decoder, name)


def memory_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The kernel's estimate of the memory available for new work, in bytes; None when
    it cannot be read."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def room_for_second_copy(model_path: str, available: int | None) -> bool:
    """Whether a second instance of the model at ``model_path`` fits: its weights file
    is at most MAX_MEMORY_SHARE of the ``available`` memory (unknown: no)."""
    try:
        size = (Path(model_path) / "model.bin").stat().st_size
    except OSError:
        return False
    return available is not None and size <= MAX_MEMORY_SHARE * available
