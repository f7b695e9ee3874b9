"""The remote engine when the remote fails: down (connection refused), slow (timeout),
answering garbage, answering too much, breaking off mid-answer. Against a fault-injecting
server double on loopback (fault_server.py), through a real whisperd.

With ``fallback = "none"`` the client gets the typed ``remote_unavailable`` error and the
daemon keeps serving; with ``fallback = "local"`` the local model answers, the result
says ``local-fallback`` and the log says why, without the text.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import RunningDaemon, shared_audio, start_daemon, stop_daemon, words
from tests.integration.fault_server import CONTROL_TEXT, fault_server, refused_port
from tests.integration.support import connect, jfk_bytes, pcm_fields, ping, transcribe

REASONS = {
    "refused": "refused",
    "slow": "timeout",
    "garbage": "garbage",
    "too_big": "too_large",
    "too_big_unannounced": "too_large",
    "drop": "dropped",
}
URLS = {"http": "http://127.0.0.1:{port}/v1", "wyoming": "wyoming://127.0.0.1:{port}"}


def remote_config(url: str, fallback: str, token_file: str = "") -> str:
    token = f'remote_token_file = "{token_file}"\n' if token_file else ""
    return (
        f'[daemon]\nengine = "remote"\nremote_url = "{url}"\nremote_timeout = 2.0\n'
        f'fallback = "{fallback}"\n{token}'
    )


@pytest.fixture(scope="module", params=["http", "wyoming"])
def faulty(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, RunningDaemon]]:
    """A daemon whose remote is a fixed loopback port, where each test puts its double."""
    protocol: str = request.param
    port = refused_port()
    tmp = tmp_path_factory.mktemp(f"faults-{protocol}")
    url = URLS[protocol].format(port=port)
    running = start_daemon(tmp, "--idle-timeout", "600", config=remote_config(url, "none"))
    yield protocol, port, running
    stop_daemon(running)


def expect_unavailable(daemon: RunningDaemon, rid: str, reason: str) -> None:
    with connect(daemon) as sock:
        _, reply = transcribe(sock, rid, jfk_bytes())
        assert reply["type"] == "error", reply
        assert reply["code"] == "remote_unavailable", reply
        assert f"({reason})" in reply["message"], reply
        ping(sock)  # the connection, and the daemon, carry on


def test_remote_down_is_a_typed_error(faulty: tuple[str, int, RunningDaemon]) -> None:
    _, _, daemon = faulty
    expect_unavailable(daemon, "down", "refused")


@pytest.mark.parametrize("mode", ["slow", "garbage", "too_big", "too_big_unannounced", "drop"])
def test_remote_faults_are_typed_errors(mode: str, faulty: tuple[str, int, RunningDaemon]) -> None:
    protocol, port, daemon = faulty
    with fault_server(protocol, mode, port):
        expect_unavailable(daemon, mode, REASONS[mode])
    assert "Traceback" not in daemon.log()


@pytest.fixture(scope="module")
def openai_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, RunningDaemon]]:
    """A daemon whose OpenAI-compatible remote is a fixed loopback port, no fallback."""
    port = refused_port()
    url = URLS["http"].format(port=port)
    tmp = tmp_path_factory.mktemp("faults-openai")
    running = start_daemon(tmp, "--idle-timeout", "600", config=remote_config(url, "none"))
    yield port, running
    stop_daemon(running)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(status: int, openai_port: tuple[int, RunningDaemon]) -> None:
    """A remote answering a redirect to another host must not get whisperd to send the
    user's audio there (307/308 re-POST it, 301/302/303 turn it into a GET), nor to take
    that host's answer as the transcript: the redirect is remote_unavailable, and says
    where it pointed."""
    port, daemon = openai_port
    with fault_server("http", "capture") as other:
        path = "/steal" if status == 303 else "/v1/audio/transcriptions"
        location = f"http://localhost:{other.port}{path}"
        with fault_server("http", "redirect", port, redirect=(status, location)) as first:
            with connect(daemon) as sock:
                _, reply = transcribe(sock, f"r{status}", jfk_bytes())
                ping(sock)
    assert len(first.heads) == 1  # asked once, not again in another format
    assert other.heads == [] and other.bodies == []  # the other host received nothing
    assert reply["type"] == "error", reply
    assert reply["code"] == "remote_unavailable", reply
    assert "(redirect)" in reply["message"] and location in reply["message"], reply
    assert "remote_url" in reply["message"]
    assert "from the other host" not in daemon.log()


def test_a_redirect_falls_back_to_the_local_model(
    tmp_path: Path, local_daemon: RunningDaemon
) -> None:
    with fault_server("http", "capture") as other:
        location = f"http://127.0.0.1:{other.port}/v1/audio/transcriptions"
        with fault_server("http", "redirect", redirect=(307, location)) as first:
            url = URLS["http"].format(port=first.port)
            config = remote_config(url, "local")
            daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=config)
            try:
                with connect(daemon, timeout=120) as sock:
                    _, reply = transcribe(sock, 1, jfk_bytes())
            finally:
                stop_daemon(daemon)
    assert other.heads == []
    assert reply["type"] == "result", reply
    assert reply["engine"] == "local-fallback" and reply["remote_error"] == "redirect"
    with connect(local_daemon) as sock:
        _, local = transcribe(sock, 1, jfk_bytes())
    assert words(reply["text"]) == words(local["text"])


@pytest.mark.parametrize("protocol", ["http", "wyoming"])
def test_control_characters_from_a_remote_never_reach_the_result(
    protocol: str, tmp_path: Path
) -> None:
    """A remote's transcript is hostile text: escape sequences, bells, NULs, backspaces
    and carriage returns are taken out before it reaches a client (and its terminal)."""
    with fault_server(protocol, "control_chars") as double:
        url = URLS[protocol].format(port=double.port)
        daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=remote_config(url, "none"))
        try:
            with connect(daemon) as sock:
                segments, reply = transcribe(sock, 1, jfk_bytes())
        finally:
            stop_daemon(daemon)
    assert reply["type"] == "result", reply
    assert "\x1b" in CONTROL_TEXT and "\x9b" in CONTROL_TEXT  # C0 and C1 were sent
    assert reply["text"] == "hello [31m world rm -rf ~ 2J end", reply
    texts = [reply["text"]] + [s["text"] for s in segments + reply["segments"]]
    for text in texts:
        assert all(c.isprintable() for c in text), text


@pytest.fixture(scope="module")
def local_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("local"), "--idle-timeout", "600")
    yield running
    stop_daemon(running)


@pytest.mark.parametrize("protocol", ["http", "wyoming"])
@pytest.mark.parametrize("mode", ["refused", "slow"])
def test_fallback_local_answers_and_says_so(
    protocol: str, mode: str, tmp_path: Path, local_daemon: RunningDaemon
) -> None:
    port = refused_port()
    url = URLS[protocol].format(port=port)
    daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=remote_config(url, "local"))
    try:
        if mode == "slow":
            with fault_server(protocol, "slow", port), connect(daemon, timeout=120) as sock:
                _, reply = transcribe(sock, 1, jfk_bytes())
        else:
            with connect(daemon, timeout=120) as sock:
                _, reply = transcribe(sock, 1, jfk_bytes())
        with connect(local_daemon) as sock:
            _, local = transcribe(sock, 1, jfk_bytes())
        assert reply["type"] == "result", reply
        assert reply["engine"] == "local-fallback" and reply["remote_error"] == REASONS[mode]
        assert words(reply["text"]) == words(local["text"])  # the local model's own answer
        log = daemon.log()
        assert "the local model answers instead" in log
        assert f"failed ({REASONS[mode]})" in log
        assert "fellow" not in log.lower()  # never the text
    finally:
        stop_daemon(daemon)


def test_dictation_stream_falls_back_with_its_commit(
    tmp_path: Path, local_daemon: RunningDaemon
) -> None:
    """A live dictation stream whose Wyoming remote is down: the final commit and the
    result come from the local model."""
    import numpy as np

    from whisperd.audio import decode_file

    pcm = (np.clip(decode_file(jfk_bytes()), -1, 1) * 32767).astype("<i2").tobytes()
    url = URLS["wyoming"].format(port=refused_port())
    daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=remote_config(url, "local"))
    try:
        with connect(daemon, timeout=120) as sock:
            fields = {**pcm_fields(), "options": {"live": True}}
            sock.sendall(wire.msg({"type": "transcribe", "id": 7, "format": "pcm", **fields}))
            assert wire.recv(sock) == {"type": "accepted", "id": 7}
            for start in range(0, len(pcm), 3200):
                part = pcm[start : start + 3200]
                sock.sendall(
                    wire.msg({"type": "audio", "id": 7, "size": len(part)}) + wire.frame(part)
                )
            sock.sendall(wire.msg({"type": "end", "id": 7}))
            commits, reply = [], None
            while reply is None:
                message = wire.recv(sock)
                if message["type"] == "commit":
                    commits.append(message)
                elif message["type"] in ("result", "error"):
                    reply = message
        assert reply["type"] == "result", reply
        assert reply["engine"] == "local-fallback"
        assert commits and commits[-1]["final"]
        assert words(" ".join(c["text"] for c in commits)) == words(reply["text"])
        assert len(words(reply["text"])) >= 15
    finally:
        stop_daemon(daemon)


def test_the_token_is_sent_and_never_logged(tmp_path: Path) -> None:
    token = "tok-" + "7f3a9c" * 6
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    with fault_server("http", "garbage") as double:
        url = URLS["http"].format(port=double.port)
        config = remote_config(url, "none", str(token_file))
        daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=config)
        try:
            expect_unavailable(daemon, "token", "garbage")
        finally:
            stop_daemon(daemon)
    assert any(f"Authorization: Bearer {token}".encode() in head for head in double.heads)
    assert token not in daemon.log()
    assert "7f3a9c" not in daemon.log()


def self_signed_https(tmp_path: Path) -> tuple[socket.socket, ssl.SSLContext]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return socket.create_server(("127.0.0.1", 0)), context


def test_tls_is_verified(tmp_path: Path) -> None:
    """An https:// remote whose certificate no authority signed is refused (reason tls):
    verification is on by default, and nothing here turns it off."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    listener, context = self_signed_https(tmp_path)
    handshakes: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                handshakes.append("completed")  # must not happen
        except (ssl.SSLError, OSError) as exc:
            handshakes.append(type(exc).__name__)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/v1"
    daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=remote_config(url, "none"))
    try:
        expect_unavailable(daemon, "tls", "tls")
    finally:
        stop_daemon(daemon)
        thread.join(10)
        listener.close()
    assert handshakes and handshakes[0] != "completed"


def test_a_server_without_verbose_json_is_asked_for_json(tmp_path: Path) -> None:
    with fault_server("http", "picky") as double:
        url = URLS["http"].format(port=double.port)
        daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=remote_config(url, "none"))
        try:
            with connect(daemon) as sock:
                segments, reply = transcribe(sock, 1, jfk_bytes())
        finally:
            stop_daemon(daemon)
    assert len(double.heads) == 2  # verbose_json refused, then json
    assert reply["type"] == "result" and reply["engine"] == "remote", reply
    assert reply["text"] == "an answer in plain json"  # the double's words, not a model's
    assert [s["text"] for s in segments] == [reply["text"]]
    assert reply["segments"] == [{"start": 0.0, "end": reply["duration"], "text": reply["text"]}]


def test_whisperctl_exits_3_when_the_remote_is_unavailable(
    faulty: tuple[str, int, RunningDaemon],
) -> None:
    """docs/protocol.md: remote_unavailable is "not now, not here" for whisperctl."""
    _, _, daemon = faulty
    done = subprocess.run(
        [sys.executable, "-m", "whisperd.cli", "--socket", str(daemon.socket_path)]
        + ["transcribe", str(shared_audio("jfk.flac"))],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 3, done.stderr
    assert "remote engine" in done.stderr and "(refused)" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_says_where_the_audio_goes(faulty: tuple[str, int, RunningDaemon]) -> None:
    protocol, port, daemon = faulty
    with connect(daemon) as sock:
        sock.sendall(wire.msg({"type": "status", "id": "s"}))
        status = wire.recv(sock)
    assert status["engine"] == "remote"
    assert status["remote"] == URLS[protocol].format(port=port)
    assert status["model_loaded"] is False  # the local model waits for a fallback


def test_dictation_audio_reaches_a_wyoming_remote_during_the_hold(tmp_path: Path) -> None:
    """The first half of a dictation is at the server before the client ends the stream:
    the audio goes out as it arrives, not at release."""
    with fault_server("wyoming", "listen") as double:
        url = URLS["wyoming"].format(port=double.port)
        daemon = start_daemon(tmp_path, "--idle-timeout", "600", config=remote_config(url, "none"))
        try:
            with connect(daemon) as sock:
                fields = {**pcm_fields(), "options": {"live": True}}
                sock.sendall(wire.msg({"type": "transcribe", "id": 1, "format": "pcm", **fields}))
                assert wire.recv(sock) == {"type": "accepted", "id": 1}
                half = b"\x10\x20" * 16000  # 1 s
                sock.sendall(wire.msg({"type": "audio", "id": 1, "size": len(half)}))
                sock.sendall(wire.frame(half))
                deadline = time.monotonic() + 30
                while double.audio_bytes < len(half) and time.monotonic() < deadline:
                    time.sleep(0.05)
                before_end = double.audio_bytes
                sock.sendall(wire.msg({"type": "audio", "id": 1, "size": len(half)}))
                sock.sendall(wire.frame(half))
                sock.sendall(wire.msg({"type": "end", "id": 1}))
                while (reply := wire.recv(sock))["type"] not in ("result", "error"):
                    pass
        finally:
            stop_daemon(daemon)
    assert before_end == len(half)  # all of the first second, before `end` was sent
    assert double.audio_bytes == 2 * len(half)
    assert reply["type"] == "result" and reply["text"] == "streamed", reply
