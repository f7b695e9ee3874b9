"""The HTTP front of a real whisperd (the real model, its decoder sandbox) on a real
loopback port, used by clients nobody here wrote: OpenAI's Python package and curl. The
text must be the Unix socket's for the same audio (two paths on the same machine)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import (
    RunningDaemon,
    assert_heard_jfk,
    shared_audio,
    start_daemon,
    stop_daemon,
    words,
)
from tests.integration.support import connect, transcribe

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningDaemon, str]]:
    port = free_port()
    config = f'[http]\nlisten = "127.0.0.1:{port}"\n'
    running = start_daemon(
        tmp_path_factory.mktemp("whisperd-http"), "--idle-timeout", "600", config=config
    )
    yield running, f"http://127.0.0.1:{port}"
    stop_daemon(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def unix_result(served: tuple[RunningDaemon, str]) -> dict[str, object]:
    """jfk.flac through the Unix socket: what every HTTP answer is compared with."""
    with connect(served[0]) as sock:
        _, result = transcribe(sock, "unix", shared_audio("jfk.flac").read_bytes())
    assert result["type"] == "result", result
    assert_heard_jfk(str(result["text"]))
    return result


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="local", max_retries=0, timeout=300)


def create(url: str, **kwargs: object) -> object:
    with shared_audio("jfk.flac").open("rb") as audio:
        return client(url).audio.transcriptions.create(model="whisper-1", file=audio, **kwargs)  # type: ignore[call-overload]


def test_openai_json_is_the_unix_sockets_text(
    served: tuple[RunningDaemon, str], unix_result: dict[str, object]
) -> None:
    result = create(served[1])
    assert result.text == unix_result["text"]


def test_openai_text_srt_and_verbose_json_carry_the_unix_segments(
    served: tuple[RunningDaemon, str], unix_result: dict[str, object]
) -> None:
    url = served[1]
    segments = unix_result["segments"]
    assert isinstance(segments, list) and segments
    assert create(url, response_format="text") == f"{unix_result['text']}\n"
    verbose = create(url, response_format="verbose_json", timestamp_granularities=["segment"])
    assert verbose.text == unix_result["text"]
    got = [(s.start, s.end, s.text) for s in verbose.segments]
    assert got == [(s["start"], s["end"], s["text"]) for s in segments]
    srt = create(url, response_format="srt")
    assert isinstance(srt, str)
    cues = [cue.splitlines() for cue in srt.strip().split("\n\n")]
    assert [cue[2] for cue in cues] == [s["text"] for s in segments]
    assert cues[0][0] == "1" and " --> " in cues[0][1]


def test_openai_word_timestamps_time_the_words_of_the_text(
    served: tuple[RunningDaemon, str],
) -> None:
    """timestamp_granularities=["word"]: OpenAI's ``words``, the text's words in order,
    timed within the audio; the same words and times as the Unix socket's
    ``word_timestamps`` for the same audio (two paths, one machine)."""
    verbose = create(served[1], response_format="verbose_json", timestamp_granularities=["word"])
    assert_heard_jfk(verbose.text)
    timed = verbose.words
    assert timed, "no words"
    assert words(" ".join(w.word for w in timed)) == words(verbose.text)
    ends = [0.0] + [w.end for w in timed]
    for previous_end, item in zip(ends, timed, strict=False):
        assert previous_end <= item.start <= item.end <= verbose.duration, item
    with connect(served[0]) as sock:
        _, unix = transcribe(
            sock, "words", shared_audio("jfk.flac").read_bytes(), options={"word_timestamps": True}
        )
    assert unix["type"] == "result", unix
    unix_words = [w for s in unix["segments"] for w in s["words"]]
    assert [(w.word, w.start, w.end) for w in timed] == [
        (w["word"], w["start"], w["end"]) for w in unix_words
    ]


def test_openai_stream_deltas_make_the_unix_text(
    served: tuple[RunningDaemon, str], unix_result: dict[str, object]
) -> None:
    events = list(create(served[1], stream=True))  # type: ignore[call-overload]
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(done) == 1 and events[-1] is done[0]
    assert done[0].text == unix_result["text"]
    assert "".join(deltas) == unix_result["text"]
    assert len(deltas) == len(unix_result["segments"])  # type: ignore[arg-type]


CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_multipart_and_an_error(
    served: tuple[RunningDaemon, str], unix_result: dict[str, object], tmp_path: Path
) -> None:
    url = served[1] + "/v1/audio/transcriptions"
    audio = shared_audio("jfk.flac")
    done = subprocess.run(
        [str(CURL), "-sS", url, "-F", f"file=@{audio}", "-F", "model=whisper-1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(done.stdout)["text"] == unix_result["text"]
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\xff\xfb" + bytes(range(256)) * 64)
    failed = subprocess.run(
        [str(CURL), "-sS", "-w", "\n%{http_code}", url, "-F", f"file=@{garbage}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    body, status = failed.stdout.rsplit("\n", 1)
    assert status == "400"
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "file"
    assert "Traceback" not in body


def test_an_idle_keep_alive_connection_lets_whisperd_exit(tmp_path: Path) -> None:
    """A real whisperd with a 5 s idle timeout exits while an HTTP client keeps its
    keep-alive connection open after its request (the connection is no activity). With
    1 s, a loaded machine (CI's clean root) let it exit idle before the client connected."""
    port = free_port()
    running = start_daemon(
        tmp_path, "--idle-timeout", "5", config=f'[http]\nlisten = "127.0.0.1:{port}"\n'
    )
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        body = (
            b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n\r\n'
            + shared_audio("jfk.flac").read_bytes()
            + b"\r\n--b0undary--\r\n"
        )
        headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
        conn.request("POST", "/v1/audio/transcriptions", body, headers)
        response = conn.getresponse()
        assert response.status == 200
        assert_heard_jfk(json.loads(response.read())["text"])
        assert not response.will_close  # the connection stays open
        assert running.process.wait(60) == 0, running.log()
        conn.close()
        assert "idle for" in running.log()
    finally:
        stop_daemon(running)


def test_non_loopback_without_a_token_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "whisperd").mkdir()
    (tmp_path / "whisperd" / "config.toml").write_text('[http]\nlisten = "0.0.0.0:0"\n')
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("LISTEN_FDS", None)
    done = subprocess.run(
        [sys.executable, "-m", "whisperd.server", "--socket", str(runtime / "w.sock")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "http.token_file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (runtime / "w.sock").exists()
