"""The [keys] section: defaults, refusal of bad values naming the key, CLI overrides."""

from __future__ import annotations

from typing import Any

import pytest
from evdev import ecodes

from whisperd.config import ConfigError
from whisperd.keys import app as keys_main
from whisperd.keys.config import KeysConfig, apply_overrides, load_keys_config
from whisperd.keys.keynames import KeyNameError, key_code, key_name, parse_combo


def test_defaults() -> None:
    config = load_keys_config({})
    assert config == KeysConfig()
    assert config.trigger_codes == (ecodes.KEY_INSERT,)
    assert config.mode == "hold" and config.suppress == "grab" and config.fallback == "unicode"
    assert config.options == {"without_timestamps": True}


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"trigger": "KEY_NOPE"}, "keys.trigger"),
        ({"mode": "sometimes"}, "keys.mode"),
        ({"suppress": "maybe"}, "keys.suppress"),
        ({"fallback": "guess"}, "keys.fallback"),
        ({"hold_threshold": 0}, "keys.hold_threshold"),
        ({"max_recording": "long"}, "keys.max_recording"),
        ({"sample_rate": 4000}, "keys.sample_rate"),
        ({"keep_open": "yes"}, "keys.keep_open"),
        ({"type_delay": 2}, "keys.type_delay"),
        ({"paste_key": "ctrl+"}, "keys.paste_key"),
        ({"keyboards": [""]}, "keys.keyboards"),
        ({"uinput_backend": "x"}, "keys.uinput_backend"),
        ({"colour": "red"}, "keys.colour"),
    ],
)
def test_bad_values_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_keys_config({"keys": section})
    assert info.value.key == key


def test_not_a_table() -> None:
    with pytest.raises(ConfigError, match="keys"):
        load_keys_config({"keys": 3})


def test_values_and_overrides() -> None:
    config = load_keys_config(
        {"keys": {"trigger": "KEY_RIGHTCTRL+KEY_SPACE", "max_recording": 30, "audio_device": 2}}
    )
    assert config.trigger_codes == (ecodes.KEY_RIGHTCTRL, ecodes.KEY_SPACE)
    assert config.max_recording == 30.0 and config.audio_device == 2
    apply_overrides(config, {"trigger": "f9", "mode": "auto", "layout": None, "language": "de"})
    assert config.trigger_codes == (ecodes.KEY_F9,) and config.mode == "auto"
    assert config.options == {"without_timestamps": True, "language": "de"}


def test_key_names() -> None:
    assert key_code("insert") == key_code("KEY_INSERT") == key_code("Insert") == ecodes.KEY_INSERT
    assert key_code("ctrl") == ecodes.KEY_LEFTCTRL
    assert parse_combo("rightctrl+space") == (ecodes.KEY_RIGHTCTRL, ecodes.KEY_SPACE)
    assert key_name(ecodes.KEY_INSERT) == "KEY_INSERT"
    for bad in ("", "KEY_NOPE", "insert+insert", "EV_KEY"):
        with pytest.raises(KeyNameError):
            parse_combo(bad)


def test_cli_refuses_bad_config(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[keys]\nmode = "sometimes"\n')
    assert keys_main.main(["--config", str(path), "--show-keys", "a"]) == 2
    assert "keys.mode" in capsys.readouterr().err


def test_cli_show_keys_with_override(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[keys]\nlayout = "us"\n')
    assert keys_main.main(["--config", str(path), "--layout", "fr", "--show-keys", "a"]) == 0
    assert "KEY_Q" in capsys.readouterr().out


def test_cli_without_uinput_explains(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from whisperd.keys.virtual import UinputUnavailable

    def no_uinput(backend: str) -> None:
        raise UinputUnavailable("cannot create the virtual keyboard: sudo modprobe uinput")

    path = tmp_path / "config.toml"
    path.write_text("")
    pytest.MonkeyPatch().setattr(keys_main, "open_virtual_keyboard", no_uinput)
    assert keys_main.main(["--config", str(path), "--layout", "us", "--type", "x"]) == 1
    assert "modprobe uinput" in capsys.readouterr().err
