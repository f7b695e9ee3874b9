"""units/dropins/remote-engine.conf under a real `systemd --user` manager (hostmgr.sh).

The unit as shipped denies the network, so a daemon with ``engine = "remote"`` cannot
reach its server and the local model answers (``local-fallback``, reason ``refused``);
with the drop-in, as docs/remote.md tells users to install it, the same daemon gets its
answer from the server. The server is the fault double's OpenAI-compatible "picky" mode
on the host's loopback (its fixed words show whose answer came back).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.integration.fault_server import fault_server

from .conftest import UNITS, UserManager, test_audio_dir
from .test_user_manager import set_idle, whisperctl


def config_dir(um: UserManager, url: str) -> str:
    """The daemon's config.toml in the runtime directory (the service sees it read-only;
    the test user's home is under /var/tmp, which PrivateTmp= hides)."""
    folder = um.runtime_dir / "remote-cfg" / "whisperd"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(
        f'[daemon]\nengine = "remote"\nremote_url = "{url}"\nremote_timeout = 10.0\n'
        'fallback = "local"\n'
    )
    for path in (folder.parent, folder, folder / "config.toml"):
        os.chown(path, um.uid, um.uid)
    return str(folder.parent)


def transcribe_json(um: UserManager) -> dict[str, object]:
    audio = test_audio_dir() / "jfk.flac"
    if not audio.exists():
        pytest.skip(f"test audio {audio} is absent (set WHISPERD_TEST_AUDIO)")
    copy = um.home / "jfk.flac"
    shutil.copy(audio, copy)
    shutil.chown(copy, um.uid)
    done = whisperctl(um, "transcribe", "--json", str(copy))
    assert done.returncode == 0, (done.stdout, done.stderr, um.journal()[-3000:])
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_remote_engine_needs_the_drop_in(user_manager: UserManager) -> None:
    um = user_manager
    with fault_server("http", "picky") as double:
        xdg = config_dir(um, f"http://127.0.0.1:{double.port}/v1")
        environment = f"Environment=XDG_CONFIG_HOME={xdg}\n"
        try:
            set_idle(um, 600, environment)
            denied = transcribe_json(um)
            drop_in = (UNITS / "dropins" / "remote-engine.conf").read_text()
            um.write_user_file(
                ".config/systemd/user/whisperd.service.d/remote-engine.conf", drop_in
            )
            um.systemctl("stop", "whisperd.service")
            um.systemctl("daemon-reload", check=True)
            allowed = transcribe_json(um)
            journal = um.journal("whisperd.service", "--since", "-10min")
        finally:
            set_idle(um, 600)  # the units as the other tests expect them, no drop-in
            shutil.rmtree(um.runtime_dir / "remote-cfg", ignore_errors=True)
    assert denied["engine"] == "local-fallback", denied
    assert denied["remote_error"] == "refused", denied
    assert "the local model answers instead" in journal
    assert allowed["engine"] == "remote", allowed
    assert allowed["text"] == "an answer in plain json"  # the server's words
    assert "fellow" not in journal.lower()
