"""whisperctl as a user runs it: real processes, real sockets, the bundled model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningDaemon, assert_heard_jfk, espeak, shared_audio, words


def whisperctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whisperd.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment with its own runtime and config dirs and a short idle timeout."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    config = tmp_path / "cfg" / "whisperd"
    config.mkdir(parents=True)
    (config / "config.toml").write_text("[daemon]\nidle_timeout = 2\n")
    env = {"XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    yield env
    # Leave nothing running: the autostarted daemon exits after its idle timeout.
    deadline = time.monotonic() + 15
    while (runtime / "whisperd.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (runtime / "whisperd.sock").exists(), "the autostarted whisperd did not exit"


def test_transcribe_prints_the_jfk_sentence(daemon: RunningDaemon) -> None:
    jfk = shared_audio("jfk.flac")
    done = whisperctl("--socket", str(daemon.socket_path), "transcribe", str(jfk))
    assert done.returncode == 0, done.stderr
    assert_heard_jfk(done.stdout)  # bounded WER
    assert done.stderr == ""  # no progress noise when stderr is not a terminal


def test_a_language_the_model_cannot_use_is_reported(daemon: RunningDaemon) -> None:
    """tiny.en transcribes English whatever --language says: whisperctl says so once
    (only the daemon's log did), and still prints the text."""
    jfk = shared_audio("jfk.flac")
    sock = ["--socket", str(daemon.socket_path)]
    done = whisperctl(*sock, "transcribe", "--language", "de", str(jfk), str(jfk))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("--language de was not used") == 1, done.stderr
    assert "'en'" in done.stderr
    assert whisperctl(*sock, "transcribe", "--language", "en", str(jfk)).stderr == ""


def test_transcribe_json_and_several_files(daemon: RunningDaemon, tmp_path: Path) -> None:
    first = espeak("The quick brown fox jumps over the lazy dog.", tmp_path / "a.wav")
    second = espeak("Please call me back tomorrow morning.", tmp_path / "b.wav")
    done = whisperctl(
        "--socket", str(daemon.socket_path), "transcribe", "--json", str(first), str(second)
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in results] == [str(first), str(second)]
    assert "dog" in words(results[0]["text"]) and "tomorrow" in words(results[1]["text"])
    for result in results:
        assert result["segments"] and result["device"] == "cpu" and result["language"] == "en"
        assert set(result["timings"]) >= {"queue", "load", "decode", "total"}
    plain = whisperctl("--socket", str(daemon.socket_path), "transcribe", str(first), str(second))
    assert f"==> {first} <==" in plain.stdout and f"==> {second} <==" in plain.stdout


def test_status_load_unload_ping(daemon: RunningDaemon) -> None:
    sock = ["--socket", str(daemon.socket_path)]
    assert whisperctl(*sock, "ping").stdout.strip() == "pong"
    assert f"socket:   {daemon.socket_path}" in whisperctl(*sock, "status").stdout
    loaded = whisperctl(*sock, "load")
    assert loaded.returncode == 0 and "tiny.en" in loaded.stdout
    status = whisperctl(*sock, "status")
    assert status.returncode == 0
    assert "loaded on cpu" in status.stdout and "exits 600 s after" in status.stdout
    again = whisperctl(*sock, "load").stdout  # nothing loads: say so, not "loaded in"
    assert "was already loaded" in again, again
    assert whisperctl(*sock, "unload").stdout.strip() == "model unloaded"
    assert "not loaded" in whisperctl(*sock, "status").stdout
    assert whisperctl(*sock, "unload").stdout.strip() == "no model was loaded"


def test_stop_ends_whisperd_and_the_next_request_starts_a_new_one(
    isolated: dict[str, str], tmp_path: Path
) -> None:
    """whisperd reads its configuration once: `stop` is how a change takes effect without
    systemd (a new user changed config.toml and saw nothing happen)."""
    assert whisperctl("stop", env=isolated).stdout.strip() == "whisperd is not running"
    assert whisperctl("ping", env=isolated).returncode == 0  # autostarted
    first = whisperctl("status", env=isolated).stdout
    config = tmp_path / "cfg" / "whisperd" / "config.toml"
    config.write_text("[daemon]\nidle_timeout = 3\n")
    stopped = whisperctl("stop", env=isolated)
    assert stopped.returncode == 0, stopped.stderr
    assert "whisperd stopped" in stopped.stdout
    second = whisperctl("status", env=isolated).stdout  # a new whisperd, the new config
    assert "exits 3 s after" in second, second
    assert first.split("(pid ")[1].split(")")[0] != second.split("(pid ")[1].split(")")[0]


def test_bad_files_give_a_message_and_status_1(daemon: RunningDaemon, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(3000))
    done = whisperctl("--socket", str(daemon.socket_path), "transcribe", str(corrupt))
    assert done.returncode == 1
    assert "cannot decode" in done.stderr and "Traceback" not in done.stderr
    missing = whisperctl("--socket", str(daemon.socket_path), "transcribe", "/nonexistent.wav")
    assert missing.returncode == 1 and "cannot read /nonexistent.wav" in missing.stderr


def test_absent_daemon_exit_3_without_autostart(isolated: dict[str, str]) -> None:
    done = whisperctl("--no-autostart", "ping", env=isolated)
    assert done.returncode == 3
    assert "whisperd is not running" in done.stderr and "Traceback" not in done.stderr


def test_silent_daemon_times_out_with_exit_4(tmp_path: Path) -> None:
    path = tmp_path / "mute.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    held: list[socket.socket] = []
    accepter = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
    accepter.start()
    try:
        done = whisperctl("--socket", str(path), "--timeout", "1", "ping")
    finally:
        server.close()
    assert done.returncode == 4
    assert "did not answer within 1 s" in done.stderr and "Traceback" not in done.stderr


def test_dead_daemon_mid_request_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "dies.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def accept_and_die() -> None:
        conn, _ = server.accept()
        conn.recv(100)
        conn.close()

    threading.Thread(target=accept_and_die, daemon=True).start()
    done = whisperctl("--socket", str(path), "--timeout", "5", "ping")
    server.close()
    assert done.returncode == 3
    assert "closed the connection" in done.stderr and "Traceback" not in done.stderr


def test_autostart_without_systemd(isolated: dict[str, str]) -> None:
    """No socket and no user manager: whisperctl starts whisperd itself and it serves."""
    done = whisperctl("ping", env=isolated)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pong"
    status = whisperctl("status", env=isolated)
    assert "self-started" in status.stdout


def test_autostart_transcribes(isolated: dict[str, str], tmp_path: Path) -> None:
    speech = espeak("Good morning, this is a short test.", tmp_path / "speech.wav")
    done = whisperctl("transcribe", str(speech), env=isolated)
    assert done.returncode == 0, done.stderr
    assert "morning" in words(done.stdout)


def test_bad_config_names_the_key(isolated: dict[str, str], tmp_path: Path) -> None:
    config = Path(isolated["XDG_CONFIG_HOME"]) / "whisperd" / "config.toml"
    config.write_text("[client]\ntimeout = 'soon'\n")
    done = whisperctl("ping", env=isolated)
    assert done.returncode == 2 and "client.timeout" in done.stderr


@pytest.mark.parametrize("setting", ["compute_type = 7", "idle_timeout = inf"])
def test_autostarted_daemon_config_error_is_shown(isolated: dict[str, str], setting: str) -> None:
    """The daemon whisperctl starts exits on a bad [daemon] section: its own message, exit 2,
    not a wait for a socket that never comes (issue 11 item 11)."""
    config = Path(isolated["XDG_CONFIG_HOME"]) / "whisperd" / "config.toml"
    config.write_text(f"[daemon]\n{setting}\n")
    done = whisperctl("ping", env=isolated)
    assert done.returncode == 2, done.stderr
    assert "daemon." + setting.split()[0] in done.stderr, done.stderr
    assert "did not start" not in done.stderr and "Traceback" not in done.stderr


def test_config_option_reaches_the_autostarted_daemon(
    isolated: dict[str, str], tmp_path: Path
) -> None:
    """`whisperctl --config FILE` starts whisperd with the same FILE."""
    config = tmp_path / "other.toml"
    config.write_text("[daemon]\nidle_timeout = 3\n")  # the default file says 2
    done = whisperctl("--config", str(config), "status", env=isolated)
    assert done.returncode == 0, done.stderr
    assert "exits 3 s after" in done.stdout, done.stdout


@pytest.mark.parametrize("command", [["status"], ["transcribe", "JFK", "JFK"]])
def test_output_to_a_closed_pipe_is_quiet(daemon: RunningDaemon, command: list[str]) -> None:
    """`whisperctl status | head -0`: the reader is gone; no BrokenPipeError traceback."""
    jfk = str(shared_audio("jfk.flac"))
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `head` does once it has had enough
    try:
        done = subprocess.run(
            [sys.executable, "-m", "whisperd.cli", "--socket", str(daemon.socket_path)]
            + [jfk if arg == "JFK" else arg for arg in command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.stderr == ""


def test_whisperctl_imports_neither_numpy_nor_faster_whisper(daemon: RunningDaemon) -> None:
    probe = (
        "import sys\n"
        "from whisperd.cli import main\n"
        f"code = main(['--socket', {str(daemon.socket_path)!r}, 'status'])\n"
        "names = ('numpy', 'faster_whisper', 'ctranslate2', 'av')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_fast_flag_takes_the_unpadded_path(daemon: RunningDaemon) -> None:
    jfk = shared_audio("jfk.flac")
    done = whisperctl(
        "--socket", str(daemon.socket_path), "transcribe", "--fast", "--json", str(jfk)
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["decoder"] == "unpadded"
    assert_heard_jfk(result["text"])  # bounded WER


def test_many_files_in_order_with_bad_ones_among_them(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    """The files are sent ahead of their results; each still gets its own text or error,
    and with ``--json`` one line each, in order, a failed one with its ``error``."""
    texts = {
        "a": "The quick brown fox jumps over the lazy dog.",
        "b": "Please call me back tomorrow morning.",
        "c": "Our meeting has been moved to Thursday afternoon.",
    }
    made = {name: espeak(text, tmp_path / f"{name}.wav") for name, text in texts.items()}
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(3000))
    order = [made["a"], corrupt, made["b"], Path("/nonexistent.wav"), made["c"]]
    done = whisperctl("--socket", str(daemon.socket_path), "transcribe", "--json", *map(str, order))
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in lines] == list(map(str, order))
    failed = {r["file"]: r["error"] for r in lines if "error" in r}
    assert set(failed) == {str(corrupt), "/nonexistent.wav"}
    assert failed[str(corrupt)]["code"] == "bad_audio" and failed[str(corrupt)]["message"]
    assert failed["/nonexistent.wav"]["code"] == "cannot_read"
    assert "No such file" in failed["/nonexistent.wav"]["message"]
    results = [r for r in lines if "error" not in r]
    assert not any("text" in r for r in lines if "error" in r)  # no text to mistake for one
    marks = {"a": {"lazy", "dog"}, "b": {"tomorrow", "morning"}, "c": {"thursday", "afternoon"}}
    for result, name in zip(results, "abc", strict=True):
        heard = set(words(result["text"]))
        assert marks[name] <= heard, (name, result["text"])
        others = set().union(*(marks[n] for n in marks if n != name))
        assert not heard & others, (name, result["text"])  # nothing from another file
    assert f"{corrupt}: cannot decode" in done.stderr
    assert "cannot read /nonexistent.wav" in done.stderr
    assert "Traceback" not in done.stderr
