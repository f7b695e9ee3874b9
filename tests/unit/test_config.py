"""whisperd/config/: every key is typed and validated, and errors name the key."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from whisperd.config import (
    MIN_ACTIVATED_IDLE_TIMEOUT,
    ClientConfig,
    ConfigError,
    DaemonConfig,
    apply_overrides,
    config_path,
    default_socket_path,
    load_section,
    read_toml,
    socket_path,
)

ROOT = Path(__file__).resolve().parents[2]

# A value of the wrong type for each kind of default.
WRONG_TYPE: dict[type, list[Any]] = {
    str: [1, True, 1.5, ["x"], {"a": 1}],
    int: ["1", True, 1.5, [1]],
    float: ["1.0", True, [1.0]],
    bool: [1, 0, "true", 1.0],
}


def daemon_keys() -> list[tuple[str, Any]]:
    return [(f.name, getattr(DaemonConfig(), f.name)) for f in dataclasses.fields(DaemonConfig)]


def client_keys() -> list[tuple[str, Any]]:
    return [(f.name, getattr(ClientConfig(), f.name)) for f in dataclasses.fields(ClientConfig)]


def test_defaults_are_valid() -> None:
    DaemonConfig().validate()
    ClientConfig().validate()
    assert load_section({}, "daemon", DaemonConfig) == DaemonConfig()
    assert load_section({}, "client", ClientConfig) == ClientConfig()


def test_documented_defaults() -> None:
    config = DaemonConfig()
    assert config.max_audio_bytes == 256 * 1024 * 1024
    assert config.max_audio_seconds == 4 * 3600
    assert config.min_duration == 0.15
    assert config.min_rms == 0.0005
    assert config.vad_filter is True
    assert config.allow_download is False


@pytest.mark.parametrize(("key", "default"), daemon_keys())
def test_every_daemon_key_type_checked_and_named(key: str, default: Any) -> None:
    for wrong in WRONG_TYPE[type(default)]:
        with pytest.raises(ConfigError) as info:
            load_section({"daemon": {key: wrong}}, "daemon", DaemonConfig)
        assert info.value.key == f"daemon.{key}"
        assert f"daemon.{key}" in str(info.value)


@pytest.mark.parametrize(("key", "default"), client_keys())
def test_every_client_key_type_checked_and_named(key: str, default: Any) -> None:
    for wrong in WRONG_TYPE[type(default)]:
        with pytest.raises(ConfigError) as info:
            load_section({"client": {key: wrong}}, "client", ClientConfig)
        assert info.value.key == f"client.{key}"


@pytest.mark.parametrize(("key", "default"), daemon_keys())
def test_every_daemon_key_accepts_its_default(key: str, default: Any) -> None:
    config = load_section({"daemon": {key: default}}, "daemon", DaemonConfig)
    assert getattr(config, key) == default


def test_int_accepted_for_float_keys() -> None:
    config = load_section({"daemon": {"idle_timeout": 30}}, "daemon", DaemonConfig)
    assert config.idle_timeout == 30.0 and isinstance(config.idle_timeout, float)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("model", ""),
        ("model", "   "),
        ("device", "tpu"),
        ("compute_type", "int4"),
        ("cpu_threads", -1),
        ("cpu_threads", 257),
        ("beam_size", 0),
        ("beam_size", 21),
        ("idle_timeout", 0),
        ("idle_timeout", -1.0),
        ("idle_timeout", float("nan")),
        ("min_duration", -0.1),
        ("min_duration", 11.0),
        ("min_rms", -0.1),
        ("min_rms", 1.0),
        ("max_audio_bytes", 4194303),
        ("max_audio_bytes", 8 * 1024**3 + 1),
        ("max_audio_seconds", 0),
        ("max_audio_seconds", -5.0),
        ("max_audio_seconds", float("nan")),
        ("stream_window", 4.9),
        ("stream_window", 28.5),
        ("stream_window", -1),
        ("draft_pause", 0.05),
        ("draft_pause", 6),
    ],
)
def test_out_of_range_values_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        load_section({"daemon": {key: value}}, "daemon", DaemonConfig)
    assert info.value.key == f"daemon.{key}"
    assert f"daemon.{key}" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"), [("timeout", 0), ("timeout", -1.0), ("connect_timeout", 0)]
)
def test_client_out_of_range(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        load_section({"client": {key: value}}, "client", ClientConfig)
    assert info.value.key == f"client.{key}"


def test_in_range_values_accepted() -> None:
    values = {
        "model": "/opt/models/small",
        "device": "cpu",
        "compute_type": "float32",
        "cpu_threads": 4,
        "beam_size": 1,
        "language": "de",
        "idle_timeout": 0.5,
        "min_duration": 0,
        "min_rms": 0,
        "max_audio_bytes": 4194304,
        "max_audio_seconds": 1,
        "allow_download": True,
        "fast_short_audio": False,
        "stream_window": 0,
        "draft_pause": 0.5,
        "debug_log_text": True,
        "socket_path": "/tmp/x.sock",
    }
    config = load_section({"daemon": values}, "daemon", DaemonConfig)
    for key, value in values.items():
        assert getattr(config, key) == value


def test_unknown_key_refused_and_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_section({"daemon": {"idle_timout": 5}}, "daemon", DaemonConfig)
    assert info.value.key == "daemon.idle_timout"
    assert "unknown key" in str(info.value)
    assert "idle_timeout" in str(info.value)  # the known keys are listed


def test_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        load_section({"daemon": 5}, "daemon", DaemonConfig)
    assert info.value.key == "daemon"


def test_other_sections_are_ignored_by_a_section_loader() -> None:
    raw = {"client": {"timeout": 5}, "keys": {"whatever": 1}}
    assert load_section(raw, "daemon", DaemonConfig) == DaemonConfig()


def test_read_toml(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[daemon]\nidle_timeout = 30\nmodel = "tiny.en"\n')
    assert read_toml(path) == {"daemon": {"idle_timeout": 30, "model": "tiny.en"}}


def test_missing_default_file_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert read_toml() == {}


def test_missing_explicit_file_is_refused(tmp_path: Path) -> None:
    # --config names a file: a typo in its name must not silently mean "all defaults".
    with pytest.raises(ConfigError) as info:
        read_toml(tmp_path / "absent.toml")
    assert info.value.key == str(tmp_path / "absent.toml")
    assert "no such file" in str(info.value)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_toml(tmp_path)
    assert info.value.key == str(tmp_path) and "directory" in str(info.value)


def test_invalid_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[daemon]\nmodel = "tiny\xff"\n')
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert info.value.key == str(path) and "UTF-8" in str(info.value)


@pytest.mark.parametrize("section", ["deamon", "Daemon", "clients", "doctor"])
def test_unknown_section_is_refused_and_named(tmp_path: Path, section: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[{section}]\nidle_timeout = 30\n")
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert f"[{section}]" in str(info.value) and str(path) in str(info.value)
    assert "unknown section" in str(info.value) and "daemon" in str(info.value)


def test_known_sections_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[daemon]\nidle_timeout = 30\n[client]\ntimeout = 5\n[keys]\nmode = "auto"\n')
    assert set(read_toml(path)) == {"daemon", "client", "keys"}


def float_keys() -> list[tuple[str, str]]:
    return [
        (section, f.name)
        for section, cls in (("daemon", DaemonConfig), ("client", ClientConfig))
        for f in dataclasses.fields(cls)
        if isinstance(getattr(cls(), f.name), float)
    ]


@pytest.mark.parametrize(("section", "key"), float_keys())
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+inf"])
def test_non_finite_numbers_are_refused(tmp_path: Path, section: str, key: str, value: str) -> None:
    # `idle_timeout = inf` made `status` send Infinity, which is not JSON (issue 11).
    path = tmp_path / "config.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    cls = DaemonConfig if section == "daemon" else ClientConfig
    with pytest.raises(ConfigError) as info:
        load_section(read_toml(path), section, cls)  # type: ignore[type-var]
    assert info.value.key == f"{section}.{key}" and "finite" in str(info.value)


def test_non_finite_override_is_refused() -> None:
    config = load_section({}, "daemon", DaemonConfig)
    with pytest.raises(ConfigError) as info:
        apply_overrides(config, "daemon", {"idle_timeout": float("inf")})
    assert info.value.key == "daemon.idle_timeout"
    config.idle_timeout = float("nan")  # set directly: validate() still refuses it
    with pytest.raises(ConfigError, match="daemon.idle_timeout"):
        config.validate()


def test_overrides_are_checked_like_the_file() -> None:
    config = load_section({"daemon": {"idle_timeout": 30}}, "daemon", DaemonConfig)
    apply_overrides(config, "daemon", {"idle_timeout": 60, "model": None, "beam_size": 2})
    assert (config.idle_timeout, config.model, config.beam_size) == (60.0, "default", 2)
    with pytest.raises(ConfigError, match="daemon.beam_size"):
        apply_overrides(config, "daemon", {"beam_size": "5"})
    with pytest.raises(ConfigError, match="daemon.modle"):
        apply_overrides(config, "daemon", {"modle": "x"})


# --- the socket path: one rule for every program ------------------------------------------


@pytest.fixture
def no_socket_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("WHISPERD_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def test_socket_path_default(no_socket_env: Path) -> None:
    assert socket_path() == default_socket_path() == no_socket_env / "whisperd.sock"
    assert socket_path(None, {"daemon": {"socket_path": ""}}) == default_socket_path()


def test_socket_path_precedence(no_socket_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"daemon": {"socket_path": "/run/configured.sock"}}
    assert socket_path(None, raw) == Path("/run/configured.sock")
    monkeypatch.setenv("WHISPERD_SOCKET", "/run/env.sock")
    assert socket_path(None, raw) == Path("/run/env.sock")
    assert socket_path("/run/option.sock", raw) == Path("/run/option.sock")
    assert socket_path("~/x.sock") == Path.home() / "x.sock"


def test_idle_timeout_floor_under_socket_activation() -> None:
    config = DaemonConfig(idle_timeout=1.0)
    warning = config.idle_timeout_when_activated()
    assert config.idle_timeout == MIN_ACTIVATED_IDLE_TIMEOUT
    assert warning is not None and "daemon.idle_timeout" in warning
    long = DaemonConfig(idle_timeout=600.0)
    assert long.idle_timeout_when_activated() is None and long.idle_timeout == 600.0


def test_idle_floor_keeps_systemd_start_limit_out_of_reach() -> None:
    # systemd's defaults: StartLimitBurst=5 within StartLimitIntervalSec=10 s. A daemon
    # lives at least its idle timeout after each start, so 5 starts span 4 of them.
    burst, interval = 5, 10.0
    assert (burst - 1) * MIN_ACTIVATED_IDLE_TIMEOUT > interval


@pytest.mark.parametrize(
    "text", ["[daemon\nidle_timeout = 1", "idle_timeout = ", "a = 1\na = 2", "\xff = 1"]
)
def test_bad_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert str(path) in str(info.value)
    assert "TOML" in str(info.value)


def test_config_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "whisperd" / "config.toml"


def run_whisperd(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    env.pop("LISTEN_FDS", None)
    return subprocess.run(
        [sys.executable, "-m", "whisperd.server", "--socket", str(tmp_path / "s.sock"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--idle-timeout", "-1"], "daemon.idle_timeout"),
        (["--idle-timeout", "0"], "daemon.idle_timeout"),
        (["--beam-size", "0"], "daemon.beam_size"),
        (["--cpu-threads", "-2"], "daemon.cpu_threads"),
        (["--compute-type", "int3"], "daemon.compute_type"),
    ],
)
def test_bad_command_line_value_exits_2_naming_the_key(
    tmp_path: Path, args: list[str], key: str
) -> None:
    done = run_whisperd(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert key in done.stderr
    assert not (tmp_path / "s.sock").exists()


def test_bad_config_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "cfg" / "whisperd").mkdir(parents=True)
    (tmp_path / "cfg" / "whisperd" / "config.toml").write_text('[daemon]\nidle_timeout = "soon"\n')
    done = run_whisperd(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "daemon.idle_timeout" in done.stderr


def test_invalid_toml_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "cfg" / "whisperd").mkdir(parents=True)
    (tmp_path / "cfg" / "whisperd" / "config.toml").write_text("[daemon\n")
    done = run_whisperd(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "TOML" in done.stderr


def test_command_line_overrides_a_bad_file_value_is_still_checked(tmp_path: Path) -> None:
    # The file is valid; the command line makes it invalid: still refused, naming the key.
    (tmp_path / "cfg" / "whisperd").mkdir(parents=True)
    (tmp_path / "cfg" / "whisperd" / "config.toml").write_text("[daemon]\nidle_timeout = 5\n")
    done = run_whisperd(tmp_path, "--idle-timeout", "-3")
    assert done.returncode == 2
    assert "daemon.idle_timeout" in done.stderr


def test_non_finite_command_line_value_exits_2(tmp_path: Path) -> None:
    done = run_whisperd(tmp_path, "--idle-timeout", "inf")
    assert done.returncode == 2, done.stderr
    assert "daemon.idle_timeout" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("problem", ["missing", "directory", "utf8", "section"])
def test_bad_config_argument_exits_2_with_one_line(tmp_path: Path, problem: str) -> None:
    path = bad_config(tmp_path, problem)
    done = run_whisperd(tmp_path, "--config", str(path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr


def bad_config(tmp_path: Path, problem: str) -> Path:
    """A --config argument with one problem of issue 11 item 11."""
    path = tmp_path / "config.toml"
    if problem == "missing":
        return tmp_path / "no-such.toml"
    if problem == "directory":
        return tmp_path
    if problem == "utf8":
        path.write_bytes(b'[daemon]\nmodel = "\xc3\x28"\n')
    else:
        path.write_text("[deamon]\nidle_timeout = 30\n")
    return path


@pytest.mark.parametrize("problem", ["missing", "directory", "utf8", "section"])
def test_whisperctl_refuses_a_bad_config_in_one_line(tmp_path: Path, problem: str) -> None:
    path = bad_config(tmp_path, problem)
    done = subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "--config", str(path), "--no-autostart", "ping"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("whisperctl: ") and str(path) in lines[0]


@pytest.mark.parametrize("problem", ["missing", "directory", "utf8", "section"])
def test_whisperd_keys_refuses_a_bad_config_in_one_line(
    tmp_path: Path, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_main = pytest.importorskip("whisperd.keys.main")
    path = bad_config(tmp_path, problem)
    assert keys_main.main(["--config", str(path), "--show-keys", "a"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("whisperd-keys: ") and str(path) in err[0]


def test_whisperctl_uses_daemon_socket_path(tmp_path: Path) -> None:
    """daemon.socket_path moves the daemon; whisperctl must look there too (issue 9)."""
    configured = tmp_path / "elsewhere.sock"
    path = tmp_path / "config.toml"
    path.write_text(f'[daemon]\nsocket_path = "{configured}"\n')
    env = {k: v for k, v in os.environ.items() if k != "WHISPERD_SOCKET"}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "--config", str(path), "--no-autostart", "ping"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr  # nothing listens there: unavailable
    assert str(configured) in done.stderr


def test_whisperctl_doctor_reports_a_bad_config_instead_of_refusing_to_run(
    tmp_path: Path,
) -> None:
    path = bad_config(tmp_path, "section")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "--config", str(path), "doctor"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert "Traceback" not in done.stderr
    assert "[FAIL] configuration" in done.stderr and "[deamon]" in done.stderr
    assert "whisperd socket" in done.stdout  # the other checks still ran
