"""whisperd.privacy: telemetry off before the libraries that read it are imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from whisperd import privacy

QUIETING = "CI TF_BUILD GITHUB_ACTIONS GITLAB_CI ORT_RUNNING_UNIT_TESTS".split()
PROBE = """
import sys
if sys.argv[2] == "after-the-hub":
    import faster_whisper, huggingface_hub.constants  # the hub reads its switches now
from whisperd import privacy
late = privacy.keep_local(allow_download=sys.argv[1] == "allow") if sys.argv[2] != "off" else []
import onnxruntime, huggingface_hub.constants as hub
print(late, hub.HF_HUB_DISABLE_TELEMETRY, hub.is_offline_mode())
"""


def probe(tmp_path: Path, download: str, switch: str) -> tuple[str, list[str]]:
    home = tmp_path / f"home-{download}-{switch}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in QUIETING and "TELEMETRY" not in k}
    env.update(HOME=str(home))
    for key in ("XDG_CACHE_HOME", "HF_HUB_OFFLINE", "DO_NOT_TRACK"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, download, switch],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip(), sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def test_onnxruntime_import_writes_nothing_and_the_hub_is_offline(tmp_path: Path) -> None:
    out, files = probe(tmp_path, "deny", "on")
    assert files == []
    assert out == "[] True True"


def test_allow_download_leaves_the_hub_online_but_telemetry_off(tmp_path: Path) -> None:
    out, files = probe(tmp_path, "allow", "on")
    assert files == []
    assert out == "[] True False"


def test_it_still_works_after_the_hub_read_its_switches(tmp_path: Path) -> None:
    """Something may load huggingface_hub's constants before main() runs (importing
    faster_whisper alone does not, today); onnxruntime is only imported when the VAD runs."""
    out, files = probe(tmp_path, "deny", "after-the-hub")
    assert files == []
    assert out == "[] True True"


def test_without_it_onnxruntime_writes_a_device_id(tmp_path: Path) -> None:
    """The control: what privacy.keep_local prevents really happens without it here."""
    out, files = probe(tmp_path, "deny", "off")
    if not files:
        pytest.skip("this onnxruntime build has no telemetry (nothing to switch off)")
    assert any(f.endswith("deviceid") for f in files), files


def test_modules_imported_too_early_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", sys)  # stands for an early import
    for key in privacy.TELEMETRY_OFF | privacy.OFFLINE:
        monkeypatch.setenv(key, "0")  # recorded, so the test leaves the environment as it was
    assert "onnxruntime" in privacy.keep_local()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
