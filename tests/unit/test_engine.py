"""Model resolution and device choice, without loading a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from whisperd import engine
from whisperd.config import DaemonConfig
from whisperd.engine import model as resolution


def fake_model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"")
    return path


def test_explicit_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolution, "_cached_model", lambda name: pytest.fail("cache consulted"))
    model = fake_model_dir(tmp_path / "my-model")
    resolved = engine.resolve_model(str(model))
    assert (resolved.source, resolved.path) == ("path", str(model))


def test_a_path_that_is_not_a_model_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(engine.ModelNotFound, match="needs a model.bin"):
        engine.resolve_model(str(tmp_path / "nothing-here"))


def test_cache_comes_before_the_bundled_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolution, "_cached_model", lambda name: f"/cache/{name}")
    resolved = engine.resolve_model("default")
    assert (resolved.source, resolved.name, resolved.path) == ("cache", "tiny.en", "/cache/tiny.en")


def test_default_offline_is_the_bundled_tiny_en(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolution, "_cached_model", lambda name: None)
    resolved = engine.resolve_model(None)
    assert resolved.source == "bundled" and resolved.name == "tiny.en"
    assert (Path(resolved.path) / "model.bin").is_file()


def test_unknown_name_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolution, "_cached_model", lambda name: None)
    with pytest.raises(engine.ModelNotFound) as caught:
        engine.resolve_model("large-v3")
    message = str(caught.value)
    assert "'large-v3' is not available offline" in message
    assert "allow_download" in message and "tiny.en" in message


def test_download_only_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import faster_whisper.utils

    calls: list[str] = []
    monkeypatch.setattr(resolution, "_cached_model", lambda name: None)

    def fake_download(name: str, **kwargs: Any) -> str:
        calls.append(name)
        return f"/downloaded/{name}"

    monkeypatch.setattr(faster_whisper.utils, "download_model", fake_download)
    with pytest.raises(engine.ModelNotFound):
        engine.resolve_model("small.en")
    assert calls == []
    resolved = engine.resolve_model("small.en", allow_download=True)
    assert resolved.source == "download" and calls == ["small.en"]


def test_auto_device_without_gpu_is_cpu_int8_with_a_reason() -> None:
    choice = engine.choose_device("auto", "auto")
    assert (choice.device, choice.compute_type) == ("cpu", "int8")
    assert "no CUDA device" in choice.reason


def test_auto_device_falls_back_when_cuda_libraries_are_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ctranslate2

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    monkeypatch.setattr(
        resolution, "_load_cuda_libraries", lambda: "libcudnn.so.9 cannot be loaded"
    )
    choice = engine.choose_device("auto", "auto")
    assert choice.device == "cpu" and "libcudnn" in choice.reason
    with pytest.raises(engine.ModelNotFound, match="device 'cuda' was configured"):
        engine.choose_device("cuda", "auto")


def test_auto_device_takes_the_gpu_when_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctranslate2

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 2)
    monkeypatch.setattr(resolution, "_load_cuda_libraries", lambda: None)
    choice = engine.choose_device("auto", "auto")
    assert (choice.device, choice.compute_type) == ("cuda", "float16")


def test_nvidia_wheel_library_folders_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for part in ("cublas", "cudnn"):
        (tmp_path / "nvidia" / part / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    dirs = resolution._nvidia_wheel_lib_dirs()
    assert [Path(d).parent.name for d in dirs] == ["cublas", "cudnn"]


def test_prefilter_never_needs_the_model() -> None:
    import numpy as np

    eng = engine.Engine(DaemonConfig())
    assert eng.transcribe(np.zeros(1000, dtype=np.float32), {}).skipped == "too_short"
    assert eng.transcribe(np.zeros(32000, dtype=np.float32), {}).skipped == "silent"
    assert not eng.loaded


def test_importing_the_engine_loads_neither_numpy_nor_faster_whisper() -> None:
    """doctor and the daemon's entry point import it before numpy may load (test_threads);
    SAMPLE_RATE needs no numpy, Samples loads it on first use."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from whisperd.engine import SAMPLE_RATE, Engine, Transcription, resolve_model\n"
        "assert SAMPLE_RATE == 16000\n"
        "heavy = [m for m in ('numpy', 'faster_whisper', 'ctranslate2') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from whisperd.engine import Samples\n"
        "assert 'numpy' in sys.modules and Samples is not None\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class _Timed:
    """faster-whisper's Word and Segment as far as the engine reads them."""

    def __init__(self, start: float, end: float, text: str, words: Any = None) -> None:
        self.start, self.end, self.word, self.text, self.words = start, end, text, text, words


class _WordModel:
    """A WhisperModel answering one segment, with words when ``word_timestamps`` is asked."""

    def __init__(self) -> None:
        self.asked: list[bool] = []

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[Any, Any]:
        self.asked.append(kwargs["word_timestamps"])
        words = [_Timed(0.1, 0.5, " Hello"), _Timed(0.5, 0.9, " world."), _Timed(0.9, 0.9, " ")]
        timed = kwargs["word_timestamps"]
        segment = _Timed(0.1, 0.9, " Hello world.", words if timed else None)

        class Info:
            language = "en"

        return iter([segment]), Info()


def test_word_timestamps_put_the_words_into_the_segments() -> None:
    import numpy as np

    eng = engine.Engine(DaemonConfig())
    fake = _WordModel()
    eng._model = fake  # type: ignore[assignment]
    audio = np.full(32000, 0.1, dtype=np.float32)
    timed = eng.transcribe(audio, {"word_timestamps": True}, offset=2.0)
    assert timed.segments == [
        {
            "start": 2.1,
            "end": 2.9,
            "text": "Hello world.",
            "words": [
                {"word": "Hello", "start": 2.1, "end": 2.5},
                {"word": "world.", "start": 2.5, "end": 2.9},
            ],
        }
    ]
    plain = eng.transcribe(audio, {})
    assert plain.segments == [{"start": 0.1, "end": 0.9, "text": "Hello world."}]
    assert fake.asked == [True, False]
