"""The remote engine's pure parts: remote_url parsing, the configuration's checks, the
token file, and reading answers (OpenAI JSON, Wyoming events) that are hostile input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from whisperd.config import ConfigError, DaemonConfig, load_section
from whisperd.engine.remote.common import (
    MAX_ANSWER_BYTES,
    RemoteUnavailable,
    clean_text,
    read_token,
    wav_bytes,
)
from whisperd.engine.remote.openai import parse_answer, printable
from whisperd.engine.remote.target import BadTarget, parse_target


def test_targets() -> None:
    t = parse_target("https://gpu.example.org/v1")
    assert (t.kind, t.host, t.port, t.tls) == ("openai", "gpu.example.org", 443, True)
    assert t.transcriptions_url == "https://gpu.example.org:443/v1/audio/transcriptions"
    t = parse_target("http://127.0.0.1:8000/v1/")
    assert (t.kind, t.port, t.path, t.token_in_clear) == ("openai", 8000, "/v1", False)
    assert parse_target("http://10.0.0.5:8000/v1").token_in_clear
    t = parse_target("wyoming://[::1]:10300")
    assert (t.kind, t.host, t.port, t.loopback) == ("wyoming", "::1", 10300, True)
    assert t.describe() == "wyoming://[::1]:10300"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/v1",
        "wyoming://host",  # no port
        "wyoming://host:10300/path",
        "https://user:secret@host/v1",  # a password in a URL would be logged
        "https://host/v1?key=abc",
        "https:///v1",
        "http://host:99999/v1",
    ],
)
def test_bad_targets(url: str) -> None:
    with pytest.raises(BadTarget):
        parse_target(url)


def daemon_section(**values: object) -> DaemonConfig:
    return load_section({"daemon": values}, "daemon", DaemonConfig)


def test_config_defaults_to_local_and_checks_remote_keys() -> None:
    assert daemon_section().engine == "local"
    config = daemon_section(engine="remote", remote_url="wyoming://127.0.0.1:10300")
    assert (config.fallback, config.remote_timeout) == ("local", 30.0)
    bad = [
        ({"engine": "cloud"}, "daemon.engine"),
        ({"engine": "remote"}, "daemon.remote_url"),
        ({"engine": "remote", "remote_url": "gopher://x"}, "daemon.remote_url"),
        ({"fallback": "maybe"}, "daemon.fallback"),
        ({"remote_timeout": 0}, "daemon.remote_timeout"),
        (
            {"engine": "remote", "remote_url": "http://192.0.2.7/v1", "remote_token_file": "/t"},
            "daemon.remote_token_file",
        ),
        (
            {"engine": "remote", "remote_url": "wyoming://h:1", "remote_token_file": "/t"},
            "daemon.remote_token_file",
        ),
    ]
    for values, key in bad:
        with pytest.raises(ConfigError) as caught:
            daemon_section(**values)
        assert caught.value.key == key, values


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  s3cret-token\n")
    assert read_token(str(path)) == "s3cret-token"
    assert read_token("") is None
    for content in ("", "two words", "x" * 5000):
        path.write_text(content)
        with pytest.raises(RemoteUnavailable) as caught:
            read_token(str(path))
        assert "s3cret" not in caught.value.message
    with pytest.raises(RemoteUnavailable, match="cannot read"):
        read_token(str(tmp_path / "absent"))


def test_openai_answers() -> None:
    verbose = {
        "text": " Hello there. General.",
        "language": "english",
        "segments": [
            {"start": 0.0, "end": 1.5, "text": " Hello there."},
            {"start": 1.5, "end": 2.0, "text": " General."},
        ],
    }
    result = parse_answer(json.dumps(verbose).encode(), 2.0)
    assert result.text == "Hello there. General."
    assert result.language == "en"
    assert [s["text"] for s in result.segments] == ["Hello there.", "General."]
    plain = parse_answer(b'{"text": "  just   text "}', 3.0)
    assert plain.text == "just text"
    assert plain.segments == [{"start": 0.0, "end": 3.0, "text": "just text"}]
    for garbage in (
        b"<html>",
        b"[1, 2]",
        b'{"text": 5}',
        b'{"text": "a", "segments": [{"start": "x", "end": 1, "text": "a"}]}',
        b'{"text": "a", "segments": [{"start": 2, "end": 1, "text": "a"}]}',
        b'{"text": "a", "segments": [{"start": NaN, "end": 1, "text": "a"}]}',
        b"\xff\xfe",
        b"[" * 100000,
    ):
        with pytest.raises(RemoteUnavailable) as caught:
            parse_answer(garbage, 3.0)
        assert caught.value.reason == "garbage", garbage[:40]


def test_control_characters_in_a_remote_answer_are_taken_out() -> None:
    """The reviewer's answer: escape sequences, a bell, a NUL, backspaces and a CR/LF
    would reach a terminal through whisperctl; C1's CSI (0x9b) and DEL too. Lone
    surrogates cannot be written as UTF-8. Printable Unicode stays."""
    hostile = "hello\x1b[31m\x07 world\x00\x08\x08\x08rm -rf ~\r\n\x9b2J\x7fend\ud800!"
    answer = {
        "text": hostile,
        "segments": [
            {"start": 0.0, "end": 1.0, "text": hostile},
            {"start": 1.0, "end": 2.0, "text": " Grüße, 東京 🎙\u00a0ok\t"},
        ],
    }
    result = parse_answer(json.dumps(answer).encode(), 2.0)
    cleaned = "hello [31m world rm -rf ~ 2J end !"
    assert [s["text"] for s in result.segments] == [cleaned, "Grüße, 東京 🎙 ok"]
    assert result.text == cleaned + " Grüße, 東京 🎙 ok"
    plain = parse_answer(json.dumps({"text": hostile}).encode(), 2.0)
    assert plain.text == cleaned
    assert plain.segments == [{"start": 0.0, "end": 2.0, "text": cleaned}]
    assert clean_text("\x85next\u2028line\u200dzwj") == "next line\u200dzwj"
    for language, kept in (("en\x1b[2J", ""), ("de-AT", "de-at"), ("fr", "fr"), ("日本", "")):
        answer = {"text": "a", "language": language}
        assert parse_answer(json.dumps(answer).encode(), 2.0).language == kept


def test_printable_keeps_a_remote_error_on_one_short_line() -> None:
    assert printable("bad\nline\x1b[31m" + "x" * 500) == ("bad line [31m" + "x" * 500)[:200]


def test_wav_is_16_bit_16_khz_mono() -> None:
    import io
    import wave

    import numpy as np

    samples = np.linspace(-1, 1, 1600, dtype=np.float32)
    with wave.open(io.BytesIO(wav_bytes(samples))) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (
            16000,
            1,
            2,
        )
        assert reader.getnframes() == 1600


def read_events(data: bytes) -> list[object]:
    """Events read by the bounded Wyoming reader from ``data`` (then EOF)."""
    from whisperd.engine.remote.wyoming import BoundedClient

    async def run() -> list[object]:
        reader = asyncio.StreamReader(limit=65536)
        reader.feed_data(data)
        reader.feed_eof()
        client = BoundedClient("127.0.0.1", 1, 1.0)
        client._reader = reader
        events = []
        while (event := await client.read_bounded()) is not None:
            events.append((event.type, event.data, event.payload))
        return events

    return asyncio.run(run())


def test_wyoming_events_are_read_within_bounds() -> None:
    data = json.dumps({"text": "hi"}).encode()
    line = json.dumps({"type": "transcript", "data_length": len(data)}).encode() + b"\n"
    assert read_events(line + data) == [("transcript", {"text": "hi"}, None)]
    big = json.dumps({"type": "transcript", "payload_length": MAX_ANSWER_BYTES + 1}).encode()
    cases = {
        big + b"\n": "too_large",  # refused before anything is read
        b"x" * 70000 + b"\n": "too_large",  # a header past 64 KiB
        b"not json\n": "garbage",
        b'{"data": {}}\n': "garbage",  # no type
        b'{"type": "transcript", "data_length": -1}\n': "garbage",
        b'{"type": "transcript", "data_length": "9"}\n': "garbage",
        b'{"type": "transcript", "data": [1]}\n': "garbage",
    }
    for data, reason in cases.items():
        with pytest.raises(RemoteUnavailable) as caught:
            read_events(data)
        assert caught.value.reason == reason, data[:60]


@pytest.mark.parametrize(
    ("shown", "status"),
    [
        ("PrivateNetwork=yes\nRestrictAddressFamilies=AF_UNIX\n", "warn"),  # the unit as shipped
        ("PrivateNetwork=no\nRestrictAddressFamilies=AF_UNIX\n", "warn"),
        ("PrivateNetwork=no\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n", "ok"),  # drop-in
    ],
)
def test_doctor_warns_when_the_unit_denies_the_network(
    shown: str, status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from whisperd import doctor

    answer = subprocess.CompletedProcess(["systemctl"], 0, shown, "")
    monkeypatch.setattr(doctor, "_systemctl", lambda *args: answer)
    check = doctor.check_remote_network()
    assert check.status.value == status, check
    if status == "warn":
        assert "remote-engine.conf" in check.message


def test_a_remote_engine_without_its_client_package_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wyoming" else real(name)
    )
    with pytest.raises(ConfigError, match=r"whisperd\[serve\]") as caught:
        daemon_section(engine="remote", remote_url="wyoming://127.0.0.1:10300")
    assert caught.value.key == "daemon.engine"
    daemon_section(engine="remote", remote_url="http://127.0.0.1:8000/v1")  # aiohttp is here


def test_newest_pcm_reads_the_tail_of_a_stream_without_joining_it() -> None:
    import numpy as np

    from whisperd.daemon.pcmstore import CompactStream
    from whisperd.protocol import PcmFormat

    stream = CompactStream(PcmFormat("s16le", 16000, 1))
    frames = [np.arange(i * 800, (i + 1) * 800, dtype="<i2").tobytes() for i in range(5)]
    sent = 0
    out = b""
    for frame in frames:
        stream.feed(frame)
        out += stream.newest_pcm(stream.length - sent)
        sent = stream.length
    assert out == b"".join(frames)  # exactly the client's samples, in order
    assert len(stream.recent) == 5 and not stream.blocks  # nothing was joined
    assert stream.newest_pcm(1200) == b"".join(frames)[-2400:]  # across two parts
