"""whisperd-wyoming.socket under a real `systemd --user` manager (hostmgr.sh), as Home
Assistant meets it: a Wyoming connection socket-activates whisperd.service as shipped (its
sandbox without network unchanged), the daemon serves the passed socket by its name and
answers the wyoming package's own client with the real model, then exits idle while a
connection stays open; the next connection activates it again."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from .conftest import UserManager, test_audio_dir
from .test_user_manager import MIN_IDLE, set_idle, state, wait_inactive, whisperctl

JFK_WORDS = ["ask", "not", "what", "your", "country", "can", "do", "for", "you"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def wyoming_port(user_manager: UserManager) -> Iterator[int]:
    """The shipped unit with a drop-in moving it to a free port (10300 may be taken here)."""
    um = user_manager
    set_idle(um, MIN_IDLE)
    port = free_port()
    um.systemctl("stop", "whisperd-wyoming.socket")
    um.write_user_file(
        ".config/systemd/user/whisperd-wyoming.socket.d/50-port.conf",
        textwrap.dedent(f"""\
            [Socket]
            ListenStream=
            ListenStream=127.0.0.1:{port}
            """),
    )
    um.systemctl("daemon-reload", check=True)
    um.systemctl("enable", "--now", "whisperd-wyoming.socket", check=True)
    yield port
    um.systemctl("disable", "--now", "whisperd-wyoming.socket")


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 120)
        assert event is not None and Info.is_type(event.type), event
        return Info.from_event(event)


def test_the_wyoming_socket_activates_whisperd_and_it_exits_idle_with_a_connection_open(
    user_manager: UserManager, wyoming_port: int
) -> None:
    from tests.integration.wyoming_harness import pcm_of, transcribe_wyoming
    from whisperd.audio import decode_file

    um = user_manager
    audio = test_audio_dir() / "jfk.flac"
    if not audio.exists():
        pytest.skip(f"test audio {audio} is absent (set WHISPERD_TEST_AUDIO)")
    pcm = pcm_of(np.rint(decode_file(audio.read_bytes()) * 32767))
    assert um.systemctl("is-active", "whisperd-wyoming.socket").stdout.strip() == "active"
    assert state(um)["ActiveState"] == "inactive", "the daemon must not run before a client"

    text = asyncio.run(transcribe_wyoming(wyoming_port, pcm)).text
    heard = text.lower().replace(",", " ").replace(".", " ").split()
    assert not [w for w in JFK_WORDS if w not in heard], text
    first = state(um)
    assert first["ActiveState"] == "active", first
    journal = um.journal("whisperd.service", "--since", "-5min")
    assert f"serving wyoming on 127.0.0.1:{wyoming_port}" in journal, journal[-3000:]
    assert whisperctl(um, "ping").returncode == 0  # the Unix socket came along by name

    async def idle_connection_while_it_exits() -> dict[str, str]:
        async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
            await client.write_event(Describe().event())
            assert await asyncio.wait_for(client.read_event(), 60) is not None
            after = await asyncio.to_thread(wait_inactive, um, MIN_IDLE + 60)
            assert await asyncio.wait_for(client.read_event(), 30) is None  # closed at exit
            return after

    after = asyncio.run(idle_connection_while_it_exits())
    assert after["Result"] == "success", after
    for unit in ("whisperd-wyoming.socket", "whisperd.socket"):
        assert um.systemctl("is-active", unit).stdout.strip() == "active", unit

    info = asyncio.run(describe(wyoming_port))  # the next connection activates it again
    assert info.asr[0].name == "whisperd"
    second = state(um)
    assert second["ActiveState"] == "active" and second["MainPID"] != first["MainPID"]


def test_the_wyoming_socket_lets_only_localhost_in(
    user_manager: UserManager, wyoming_port: int
) -> None:
    props = user_manager.show(
        "whisperd-wyoming.socket", "FileDescriptorName", "IPAddressAllow", "IPAddressDeny"
    )
    assert props["FileDescriptorName"] == "wyoming", props
    assert "127.0.0.0/8" in props["IPAddressAllow"], props
    service = user_manager.show("whisperd.service", "RestrictAddressFamilies", "PrivateNetwork")
    assert service == {"RestrictAddressFamilies": "AF_UNIX", "PrivateNetwork": "yes"}, service
