"""whisperctl doctor's checks, against faked system state."""

from __future__ import annotations

import builtins
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from whisperd import doctor, doctorways
from whisperd.doctor import Check, Status
from whisperd.doctor import keys as doctor_keys


@pytest.fixture()
def no_uinput(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(doctor_keys, "UINPUT_PATH", str(tmp_path / "uinput"))
    monkeypatch.setattr(doctor_keys, "SYS_MODULE_DIR", str(tmp_path / "sys"))
    monkeypatch.setattr(doctor_keys, "MODULES_DIR", str(tmp_path / "modules"))
    monkeypatch.setattr(doctor_keys.platform, "release", lambda: "6.1.0-test")
    return tmp_path


def test_uinput_absent_from_kernel_is_one_clear_line(no_uinput: Path) -> None:
    check = doctor.check_uinput()
    assert check.status is Status.FAIL
    assert "\n" not in check.line()
    assert "has no uinput module" in check.message and "sudo modprobe uinput" in check.message
    assert "60-whisperd-uinput.rules" in check.message


def test_uinput_module_not_loaded(no_uinput: Path) -> None:
    moddir = no_uinput / "modules" / "6.1.0-test"
    moddir.mkdir(parents=True)
    (moddir / "modules.dep").write_text("kernel/drivers/input/misc/uinput.ko:\n")
    check = doctor.check_uinput()
    assert check.status is Status.FAIL and "not loaded" in check.message


def test_uinput_access(no_uinput: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (no_uinput / "uinput").touch()
    monkeypatch.setattr(doctor_keys.os, "access", lambda path, mode: False)
    check = doctor.check_uinput()
    assert check.status is Status.FAIL and "cannot open it" in check.message
    monkeypatch.setattr(doctor_keys.os, "access", lambda path, mode: True)
    assert doctor.check_uinput().status is Status.OK


def test_no_input_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_keys, "INPUT_GLOB", str(tmp_path / "event*"))
    [check] = doctor.check_keyboards()
    assert check.status is Status.FAIL


def test_portaudio_missing_does_not_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_portaudio(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    check = doctor.check_audio()
    assert check.status is Status.FAIL and "libportaudio2" in check.message


def test_model_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    import whisperd.engine as engine

    def missing(spec: str | None, allow_download: bool = False) -> Any:
        raise engine.ModelNotFound("no model named 'huge'")

    monkeypatch.setattr(engine, "resolve_model", missing)
    check = doctor.check_model("huge")
    assert check.status is Status.FAIL and "huge" in check.message
    monkeypatch.delattr(engine, "resolve_model")
    assert doctor.check_model(None).status is Status.SKIP


def test_units_without_systemctl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_systemctl", lambda *args: None)
    assert doctor.check_units()[0].status is Status.SKIP


def test_units_states(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        ("show-environment",): (0, ""),
        ("is-enabled", "whisperd.socket"): (0, "enabled\n"),
        ("is-enabled", "whisperd.service"): (0, "static\n"),
        ("is-enabled", "whisperd-keys.service"): (1, "disabled\n"),
    }

    def fake(*args: str) -> subprocess.CompletedProcess[str]:
        code, out = answers[args]
        return subprocess.CompletedProcess(["systemctl", *args], code, out, "")

    monkeypatch.setattr(doctor, "_systemctl", fake)
    statuses = [c.status for c in doctor.check_units()]
    assert statuses == [Status.OK, Status.OK, Status.FAIL]


def test_run_doctor_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_read_config", lambda path: {"daemon": {"device": "cuda"}})
    monkeypatch.setattr(
        doctor,
        "collect",
        lambda config: [Check(Status.OK, "a", "fine"), Check(Status.SKIP, "b", "-")],
    )
    out = io.StringIO()
    assert doctor.run_doctor(out=out) == 0
    monkeypatch.setattr(doctor, "collect", lambda config: [Check(Status.FAIL, "uinput", "absent")])
    out = io.StringIO()
    assert doctor.run_doctor(out=out) == 1
    assert "[FAIL] uinput: absent" in out.getvalue()


def test_collect_asks_cuda_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = Check(Status.OK, "x", "")
    for name in ("check_keys_extra", "check_uinput", "check_socket"):
        monkeypatch.setattr(doctor, name, lambda: ok)
    monkeypatch.setattr(doctor, "check_keyboards", lambda code: [ok])
    monkeypatch.setattr(doctor, "check_audio", lambda device: ok)
    monkeypatch.setattr(doctor, "check_units", lambda: [ok])
    monkeypatch.setattr(doctor, "check_model", lambda spec: ok)
    monkeypatch.setattr(doctor, "check_cuda", lambda: Check(Status.FAIL, "CUDA/cuDNN", "none"))
    monkeypatch.setattr(doctorways, "control_check", lambda raw: ok)
    # 7 steps; the keyboards step also says which way to dictate and checks whisperd-keys
    assert len(doctor.collect({})) == 9
    assert doctor.collect({"daemon": {"device": "cuda"}})[-1].name == "CUDA/cuDNN"


def test_import_is_light() -> None:
    code = (
        "import sys, whisperd.doctor; "
        "heavy = [m for m in ('numpy', 'faster_whisper', 'ctranslate2', 'evdev', 'sounddevice') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_user_manager_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """whisperctl starts whisperd by itself there (README): doctor counted two problems."""
    unreachable = subprocess.CompletedProcess(
        ["systemctl"], 1, "", "Failed to connect to bus: No medium found\n"
    )
    monkeypatch.setattr(doctor, "_systemctl", lambda *args: unreachable)
    monkeypatch.setenv("WHISPERD_SOCKET", str(tmp_path / "whisperd.sock"))
    [units] = doctor.check_units()
    assert units.status is Status.WARN
    assert "not reachable" in units.message and "starts whisperd by itself" in units.message
    socket_check = doctor.check_socket()
    assert socket_check.status is Status.WARN and "does not exist" in socket_check.message


def test_no_socket_with_a_user_manager_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = subprocess.CompletedProcess(["systemctl"], 0, "PATH=/usr/bin\n", "")
    monkeypatch.setattr(doctor, "_systemctl", lambda *args: running)
    monkeypatch.setenv("WHISPERD_SOCKET", str(tmp_path / "whisperd.sock"))
    check = doctor.check_socket()
    assert check.status is Status.FAIL and "enable --now whisperd.socket" in check.message
