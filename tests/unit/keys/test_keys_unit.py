"""units/whisperd-keys.service works for trigger = "none" too: it assumes no input group."""

from __future__ import annotations

import configparser
from pathlib import Path

UNIT = Path(__file__).resolve().parents[3] / "units" / "whisperd-keys.service"


def test_the_unit_asks_for_no_group_and_hides_no_device() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = dict(parser["Service"])
    assert service["ExecStart"] == "whisperd-keys"  # the trigger comes from config.toml
    for key in ("SupplementaryGroups", "Group", "DeviceAllow", "PrivateDevices", "User"):
        assert key not in service, f"{key}= would tie whisperd-keys to one way of dictating"
    assert 'trigger = "none"' in UNIT.read_text()
