"""What the HTTP front is configured with: the model it names, the token file it accepts."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.unit.fronts.support import run, serving
from whisperd.config import DaemonConfig
from whisperd.fronts import FrontRefused
from whisperd.fronts.http.guard import allowed_origin, loopback_host, read_token


def test_models_name_the_resolved_model_as_the_wyoming_front_does(tmp_path: Path) -> None:
    """daemon.model = "default" is the bundled tiny.en: /v1/models says so, not "default"."""

    async def test() -> None:
        config = DaemonConfig(pack_files=False, model="default")
        async with serving(tmp_path, config=config) as s, aiohttp.ClientSession() as session:
            async with session.get(s.url + "/v1/models") as response:
                ids = [m["id"] for m in (await response.json())["data"]]
            assert ids == ["whisper-1", "tiny.en"]
            async with session.get(s.url + "/v1/models/tiny.en") as response:
                assert response.status == 200
                assert (await response.json())["id"] == "tiny.en"

    run(test)


def test_models_name_a_model_directory_by_its_last_part(tmp_path: Path) -> None:
    async def test() -> None:
        config = DaemonConfig(pack_files=False, model=str(tmp_path / "models" / "my-model"))
        async with serving(tmp_path, config=config) as s, aiohttp.ClientSession() as session:
            async with session.get(s.url + "/v1/models") as response:
                ids = [m["id"] for m in (await response.json())["data"]]
            assert ids == ["whisper-1", "my-model"]

    run(test)


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o604, 0o660, 0o610])
def test_a_token_file_its_group_or_others_can_use_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text("s3cret-token\n")
    path.chmod(mode)
    with pytest.raises(FrontRefused, match="chmod 600") as caught:
        read_token(str(path))
    assert f"{mode:04o}" in str(caught.value)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_token_file_only_its_owner_can_use_is_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text("s3cret-token\n")
    path.chmod(mode)
    assert read_token(str(path)) == b"s3cret-token"


@pytest.mark.parametrize(
    "origin", ["http://localhost:1@evil.example", "http://127.0.0.1@evil.example:80"]
)
def test_an_origin_or_host_with_userinfo_is_not_loopback(origin: str) -> None:
    """No browser sends userinfo in an Origin; one that has it names another host."""
    assert not allowed_origin(origin)
    assert not loopback_host(origin.removeprefix("http://"))
