"""whisperd-http.socket under a real `systemd --user` manager (hostmgr.sh): an HTTP request
socket-activates whisperd.service as shipped (its sandbox without network unchanged), the
daemon tells the two passed sockets apart by name, answers with the real model through
OpenAI's client, and exits idle while a client keeps its keep-alive connection open; the
next request activates it again."""

from __future__ import annotations

import http.client
import json
import socket
import textwrap
from collections.abc import Iterator

import openai
import pytest

from .conftest import UserManager, test_audio_dir
from .test_user_manager import MIN_IDLE, set_idle, state, wait_inactive, whisperctl

JFK_WORDS = ["ask", "not", "what", "your", "country", "can", "do", "for", "you"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def enable_http_socket(um: UserManager, port: int) -> None:
    """The shipped unit with a drop-in moving it to a free port (8765 may be taken here)."""
    um.systemctl("stop", "whisperd-http.socket")
    um.write_user_file(
        ".config/systemd/user/whisperd-http.socket.d/50-port.conf",
        textwrap.dedent(f"""\
            [Socket]
            ListenStream=
            ListenStream=127.0.0.1:{port}
            """),
    )
    um.systemctl("daemon-reload", check=True)
    um.systemctl("enable", "--now", "whisperd-http.socket", check=True)


@pytest.fixture
def http_port(user_manager: UserManager) -> Iterator[int]:
    set_idle(user_manager, MIN_IDLE)
    port = free_port()
    enable_http_socket(user_manager, port)
    yield port
    user_manager.systemctl("disable", "--now", "whisperd-http.socket")


def test_the_http_socket_activates_whisperd_and_it_exits_idle_with_a_connection_open(
    user_manager: UserManager, http_port: int
) -> None:
    um = user_manager
    audio = test_audio_dir() / "jfk.flac"
    if not audio.exists():
        pytest.skip(f"test audio {audio} is absent (set WHISPERD_TEST_AUDIO)")
    assert um.systemctl("is-active", "whisperd-http.socket").stdout.strip() == "active"
    assert state(um)["ActiveState"] == "inactive", "the daemon must not run before a client"

    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{http_port}/v1", api_key="local", max_retries=0, timeout=300
    )
    with audio.open("rb") as handle:
        text = client.audio.transcriptions.create(model="whisper-1", file=handle).text
    heard = text.lower().replace(",", " ").replace(".", " ").split()
    assert not [w for w in JFK_WORDS if w not in heard], text
    first = state(um)
    assert first["ActiveState"] == "active", first
    journal = um.journal("whisperd.service", "--since", "-5min")
    assert "listening (socket activation)" in journal, journal[-3000:]
    assert f"serving http on 127.0.0.1:{http_port}" in journal, journal[-3000:]
    # the Unix socket came along (whisperd.socket's fd, by its name): whisperctl works too
    assert whisperctl(um, "ping").returncode == 0

    # A keep-alive connection stays open and idle: the daemon exits all the same.
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
    conn.request("GET", "/health")
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["status"] == "ok"
    assert not response.will_close
    after = wait_inactive(um, MIN_IDLE + 60)
    conn.close()
    assert after["Result"] == "success", after
    for unit in ("whisperd-http.socket", "whisperd.socket"):
        assert um.systemctl("is-active", unit).stdout.strip() == "active", unit

    # The next request activates a new daemon through the HTTP socket.
    health = http.client.HTTPConnection("127.0.0.1", http_port, timeout=120)
    health.request("GET", "/health")
    assert health.getresponse().status == 200
    health.close()
    second = state(um)
    assert second["ActiveState"] == "active" and second["MainPID"] != first["MainPID"]


def test_the_service_sandbox_is_unchanged_with_the_http_socket(
    user_manager: UserManager, http_port: int
) -> None:
    """The service still cannot create an IP socket of its own: only the passed one."""
    props = user_manager.show(
        "whisperd.service", "RestrictAddressFamilies", "PrivateNetwork", "IPAddressDeny"
    )
    assert props["RestrictAddressFamilies"] == "AF_UNIX", props
    assert props["PrivateNetwork"] == "yes", props
    socket_props = user_manager.show(
        "whisperd-http.socket", "FileDescriptorName", "IPAddressAllow", "IPAddressDeny"
    )
    assert socket_props["FileDescriptorName"] == "http", socket_props
    assert "127.0.0.0/8" in socket_props["IPAddressAllow"], socket_props
