"""whisperctl and its client against a scripted fake daemon on a real Unix socket: the
replies a real whisperd gives only under load or at the wrong moment (connection cap, a
running transcription, an early error mid-upload)."""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import wire
from whisperd import autostart, cli
from whisperd.client import EXIT_UNAVAILABLE, Client, ClientError, DaemonUnavailable
from whisperd.protocol import MAX_AUDIO_FRAME

Script = Callable[[socket.socket], None]


class FakeDaemon:
    """Accepts one connection on a private socket and runs ``script`` on it in a thread."""

    def __init__(self, directory: Path, script: Script) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        self.path = directory / "fake.sock"
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen(1)
        self.done = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self.run, args=(script,), daemon=True)
        self.thread.start()

    def run(self, script: Script) -> None:
        try:
            conn, _ = self.server.accept()
            conn.settimeout(60)
            with conn:
                script(conn)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc
        finally:
            self.done.set()

    def finish(self) -> None:
        self.thread.join(60)
        self.server.close()
        assert not self.thread.is_alive()
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Script], FakeDaemon]]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    started: list[FakeDaemon] = []

    def start(script: Script) -> FakeDaemon:
        started.append(FakeDaemon(tmp_path / "run", script))
        return started[-1]

    yield start
    for daemon in started:
        daemon.finish()


def greet(conn: socket.socket, max_audio_bytes: int = 1 << 30) -> None:
    hello = wire.recv(conn)
    assert hello["type"] == "hello", hello
    limits = {"max_audio_frame": MAX_AUDIO_FRAME, "max_audio_bytes": max_audio_bytes}
    conn.sendall(wire.msg({"type": "hello", "id": hello["id"], "version": 1, "limits": limits}))


def read_frame(conn: socket.socket) -> bytes | None:
    """One frame's payload; None at the end of the connection."""
    try:
        (length,) = struct.unpack(">I", wire.recv_exact(conn, 4))
    except EOFError:
        return None
    return wire.recv_exact(conn, length)


def ctl(daemon: FakeDaemon, *args: str) -> int:
    return cli.main(["--socket", str(daemon.path), "--no-autostart", *args])


def test_unload_during_a_transcription_says_the_model_goes_later(
    fake: Callable[[Script], FakeDaemon], capsys: pytest.CaptureFixture[str]
) -> None:
    def script(conn: socket.socket) -> None:
        greet(conn)
        unload = wire.recv(conn)
        assert unload["type"] == "unload"
        reply = {"type": "unloaded", "id": unload["id"], "was_loaded": True, "pending": True}
        conn.sendall(wire.msg(reply))

    daemon = fake(script)
    assert ctl(daemon, "unload") == 0
    out = capsys.readouterr().out
    assert "model unloaded" not in out
    assert "when the running transcription finishes" in out


def test_unload_when_idle_says_unloaded(
    fake: Callable[[Script], FakeDaemon], capsys: pytest.CaptureFixture[str]
) -> None:
    def script(conn: socket.socket) -> None:
        greet(conn)
        unload = wire.recv(conn)
        reply = {"type": "unloaded", "id": unload["id"], "was_loaded": True, "pending": False}
        conn.sendall(wire.msg(reply))

    assert ctl(fake(script), "unload") == 0
    assert capsys.readouterr().out.strip() == "model unloaded"


def test_refused_at_the_connection_cap_shows_the_daemons_reason(
    fake: Callable[[Script], FakeDaemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon sends its error and closes before our hello: we show its reason, exit 3."""
    reason = "whisperd serves at most 64 connections at once"

    def script(conn: socket.socket) -> None:
        refusal = {"type": "error", "id": None, "code": "too_many_connections", "message": reason}
        conn.sendall(wire.msg(refusal))

    daemon = fake(script)

    def verify_after_refusal(sock: socket.socket, path: str) -> None:
        assert daemon.done.wait(60)  # the daemon has answered and closed: hello comes late

    monkeypatch.setattr(autostart, "verify_daemon", verify_after_refusal)
    with pytest.raises(DaemonUnavailable) as raised:
        Client.connect(str(daemon.path), timeout=30, autostart=False)
    assert raised.value.code == "too_many_connections"
    assert raised.value.message == reason
    assert raised.value.exit_code == EXIT_UNAVAILABLE


def test_shutting_down_is_daemon_unavailable(
    fake: Callable[[Script], FakeDaemon], capsys: pytest.CaptureFixture[str]
) -> None:
    """`shutting_down` means send it again to the next whisperd: exit 3, not 1."""

    def script(conn: socket.socket) -> None:
        greet(conn)
        status = wire.recv(conn)
        error = {
            "type": "error",
            "id": status["id"],
            "code": "shutting_down",
            "message": "whisperd is stopping; send the request again (a new whisperd starts)",
        }
        conn.sendall(wire.msg(error))

    assert ctl(fake(script), "status") == EXIT_UNAVAILABLE
    assert "whisperd is stopping" in capsys.readouterr().err


def upload_counter(
    conn: socket.socket, error_after: int | None, max_audio_bytes: int, counts: dict[str, int]
) -> None:
    """A daemon that takes one file request and counts the audio it gets; it answers
    audio_too_large after ``error_after`` frames (and reads on, as whisperd does)."""
    greet(conn, max_audio_bytes)
    while (payload := read_frame(conn)) is not None:
        message: dict[str, Any] = wire.json.loads(payload)
        if message["type"] == "transcribe":
            conn.sendall(wire.msg({"type": "accepted", "id": message["id"]}))
        elif message["type"] == "audio":
            audio = read_frame(conn)
            assert audio is not None and len(audio) == message["size"]
            counts["frames"] += 1
            counts["bytes"] += len(audio)
            if counts["frames"] == error_after:
                refusal = {"type": "error", "id": message["id"], "code": "audio_too_large"}
                conn.sendall(wire.msg({**refusal, "message": "audio exceeds the limit"}))
        else:
            counts[message["type"]] = counts.get(message["type"], 0) + 1


def test_upload_stops_at_an_early_error_reply(
    fake: Callable[[Script], FakeDaemon], tmp_path: Path
) -> None:
    frames = 12
    audio = tmp_path / "big.bin"
    audio.write_bytes(bytes(frames * MAX_AUDIO_FRAME))
    counts = {"frames": 0, "bytes": 0}
    daemon = fake(lambda conn: upload_counter(conn, 1, 1 << 30, counts))
    with Client.connect(str(daemon.path), timeout=30, autostart=False) as session:
        with pytest.raises(ClientError) as raised:
            session.transcribe_file(audio)
    daemon.finish()
    assert raised.value.code == "audio_too_large"
    # Frames already on their way when the error came may arrive; not the rest of the file.
    assert counts["frames"] <= 3, counts
    assert "end" not in counts


def test_an_endless_input_stops_at_the_daemons_limit(
    fake: Callable[[Script], FakeDaemon], capsys: pytest.CaptureFixture[str]
) -> None:
    """/dev/zero never ends: whisperctl stops at the hello reply's max_audio_bytes."""
    limit = 3 * MAX_AUDIO_FRAME
    counts = {"frames": 0, "bytes": 0}
    daemon = fake(lambda conn: upload_counter(conn, None, limit, counts))
    assert ctl(daemon, "transcribe", os.devnull.replace("null", "zero")) == 1
    daemon.finish()
    assert "max_audio_bytes" in capsys.readouterr().err
    assert counts["bytes"] <= limit
    assert "end" not in counts


def test_a_file_over_the_limit_is_refused_before_sending(
    fake: Callable[[Script], FakeDaemon], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = tmp_path / "big.bin"
    audio.write_bytes(bytes(2 * MAX_AUDIO_FRAME))
    counts = {"frames": 0, "bytes": 0}
    daemon = fake(lambda conn: upload_counter(conn, None, MAX_AUDIO_FRAME, counts))
    assert ctl(daemon, "transcribe", str(audio)) == 1
    daemon.finish()
    assert "max_audio_bytes" in capsys.readouterr().err
    assert counts["bytes"] == 0


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_a_bad_timeout_is_a_usage_error_not_a_traceback(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--timeout", value, "ping"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-3", "21", "five"])
def test_a_bad_beam_size_is_a_usage_error_naming_the_option(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["transcribe", "--beam-size", value, "x.wav"])
    assert exited.value.code == 2
    assert "--beam-size" in capsys.readouterr().err


def test_live_with_a_file_says_live_reads_standard_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["transcribe", "--live", "talk.flac"]) == 2
    err = capsys.readouterr().err
    assert "--live reads standard input" in err and "--live -" in err
    assert cli.main(["transcribe", "-", "talk.flac"]) == 2
    assert "'-' (standard input) takes no other file" in capsys.readouterr().err


def test_status_names_the_default_model_and_the_socket() -> None:
    """A fresh daemon's status said "model: default"; and which socket was asked (an
    unset XDG_RUNTIME_DIR sends whisperctl to /tmp/whisperd-UID) was nowhere."""
    fresh = {"version": "0.1.0", "pid": 7, "configured_model": "default", "model_loaded": False}
    text = cli.format_status(fresh, "/tmp/whisperd-0/whisperd.sock")
    assert "model:    tiny.en (the default) not loaded" in text
    assert "socket:   /tmp/whisperd-0/whisperd.sock" in text


def test_stop_refuses_a_daemon_that_is_not_the_process_listening(
    fake: Callable[[Script], FakeDaemon], capsys: pytest.CaptureFixture[str]
) -> None:
    """A socket forwarded from another machine or container answers with a pid that
    means nothing here: nothing is signalled (the listener here is this test)."""

    def script(conn: socket.socket) -> None:
        greet(conn)
        status = wire.recv(conn)
        assert status["type"] == "status"
        conn.sendall(wire.msg({"type": "status", "id": status["id"], "pid": 999_999_999}))
        assert read_frame(conn) is None  # no more requests: the client only closes

    assert ctl(fake(script), "stop") == 1
    err = capsys.readouterr().err
    assert "not stopping" in err and "999999999" in err and str(os.getpid()) in err


def test_stop_with_nothing_listening_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    assert cli.main(["--socket", str(run / "whisperd.sock"), "stop"]) == 0
    assert capsys.readouterr().out.strip() == "whisperd is not running"
    assert not (run / "whisperd.sock").exists()  # no whisperd was started to be stopped


def test_stop_at_the_connection_cap_is_not_not_running(
    fake: Callable[[Script], FakeDaemon], capsys: pytest.CaptureFixture[str]
) -> None:
    def script(conn: socket.socket) -> None:
        wire.recv(conn)
        refusal = {"type": "error", "id": None, "code": "too_many_connections"}
        conn.sendall(wire.msg({**refusal, "message": "whisperd has 64 connections"}))

    assert ctl(fake(script), "stop") == EXIT_UNAVAILABLE
    captured = capsys.readouterr()
    assert "not running" not in captured.out and "64 connections" in captured.err


def test_a_huge_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--timeout", "1e300", "ping"])
    assert exited.value.code == 2 and "at most" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("asked", "result", "warned"),
    [
        ("de", {"language": "en"}, True),
        ("en", {"language": "en"}, False),
        ("EN", {"language": "en-US"}, False),
        ("en_GB", {"language": "en"}, False),
        ("english", {"language": "en"}, False),  # a name: not compared
        ("de", {"language": ""}, False),  # skipped audio
        ("de", {"language": "en", "engine": "remote"}, True),
    ],
)
def test_language_check(
    asked: str, result: dict[str, Any], warned: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    check = cli.LanguageCheck(asked)
    assert check(result) == result
    err = capsys.readouterr().err
    assert ("was not used" in err) is warned
    assert ("tiny.en" in err) is (warned and result.get("engine") != "remote")
