"""A remote engine's cost: whisperd in front of a speech server on loopback vs that server
called directly, and what a dictation waits for at release (issue 15).

    .venv/bin/python -m bench.remote [--files 20] [--dictations 3] [--out bench/remote.md]

Servers: wyoming-faster-whisper (Wyoming) and faster-whisper-server (OpenAI-compatible),
installed by scripts/remote-servers.sh into their own venv and run on the bundled tiny.en,
on this machine's CPU with the local engine's compute type (tests/integration/
remote_servers.py starts them). For each server:

- **files**: the same 20 espeak-ng sentences (16 kHz WAV, 2-5 s), one at a time, (a)
  straight to the server with its protocol's own client code (aiohttp multipart; the
  ``wyoming`` package's AsyncTcpClient), (b) through whisperd (``engine = "remote"``)
  over its Unix socket as ``whisperctl transcribe`` sends them. whisperd's overhead is
  (b) − (a): its decoder process, the WAV it re-encodes, the hop. The words of (a) and
  (b) are compared.
- **dictation**: 5 s utterances streamed in 100 ms frames at real-time pace as a live
  stream (whisperd-keys' request); release → result, for the Wyoming remote (audio sent
  while it is spoken), the OpenAI remote (audio sent at release) and the local engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import material
from tests import wire
from tests.conftest import RunningDaemon, start_daemon, stop_daemon, words
from tests.integration import remote_servers
from tests.integration.support import connect, pcm_fields, transcribe

FRAME = 3200  # 100 ms of s16le at 16 kHz


def direct_openai(url: str, path: Path) -> tuple[float, str]:
    import aiohttp

    async def run() -> tuple[float, str]:
        started = time.monotonic()
        form = aiohttp.FormData()
        form.add_field("file", path.read_bytes(), filename=path.name, content_type="audio/wav")
        form.add_field("model", "whisper-1")
        form.add_field("response_format", "verbose_json")
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/audio/transcriptions", data=form) as answer,
        ):
            body = await answer.json()
        return time.monotonic() - started, str(body["text"])

    return asyncio.run(run())


def direct_wyoming(url: str, path: Path) -> tuple[float, str]:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    pcm = material.float_to_s16(material.decode(path))
    host, port = url.removeprefix("wyoming://").rsplit(":", 1)

    async def run() -> tuple[float, str]:
        started = time.monotonic()
        async with AsyncTcpClient(host, int(port)) as client:
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for i in range(0, len(pcm), 32000):
                chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + 32000])
                await client.write_event(chunk.event())
            await client.write_event(AudioStop().event())
            while (event := await client.read_event()) is not None:
                if Transcript.is_type(event.type):
                    return time.monotonic() - started, Transcript.from_event(event).text
        raise RuntimeError("no transcript")

    return asyncio.run(run())


def both_ways(
    daemon: RunningDaemon,
    files: list[Path],
    direct: Callable[[str, Path], tuple[float, str]],
    url: str,
) -> tuple[list[tuple[float, str]], list[tuple[float, str, dict[str, float]]]]:
    """Each file straight to the server, then through whisperd, alternating: on a shared
    machine the load drifts, and both paths see the same drift."""
    straight, via = [], []
    with connect(daemon, timeout=300) as sock:
        for i, path in enumerate(files):
            straight.append(direct(url, path))
            started = time.monotonic()
            _, reply = transcribe(sock, i, path.read_bytes())
            assert reply["type"] == "result" and reply.get("engine") == "remote", reply
            via.append((time.monotonic() - started, str(reply["text"]), reply["timings"]))
    return straight, via


def dictate(daemon: RunningDaemon, pcm: bytes) -> tuple[float, dict[str, Any]]:
    """A live stream at real-time pace; seconds from `end` to the result."""
    with connect(daemon, timeout=300) as sock:
        message = {"type": "transcribe", "id": 1, "format": "pcm", **pcm_fields()}
        sock.sendall(wire.msg({**message, "options": {"live": True}}))
        assert wire.recv(sock)["type"] == "accepted"
        begun = time.monotonic()
        for n, start in enumerate(range(0, len(pcm), FRAME)):
            part = pcm[start : start + FRAME]
            sock.sendall(wire.msg({"type": "audio", "id": 1, "size": len(part)}) + wire.frame(part))
            time.sleep(max(0.0, begun + (n + 1) * 0.1 - time.monotonic()))
        released = time.monotonic()
        sock.sendall(wire.msg({"type": "end", "id": 1}))
        while (reply := wire.recv(sock))["type"] not in ("result", "error"):
            pass
        return time.monotonic() - released, reply


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}"


def run(files_n: int, dictations: int, out: Path) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    gen = material.Generator(tmp)
    items = gen.sentence_set(files_n, 0, "f", 2.0, 5.0)
    files = [item.path for item in items if item.path is not None]
    utterances = [gen.utterance(5, 105 + i) for i in range(dictations)]
    (tmp / "local").mkdir()
    local = start_daemon(tmp / "local", "--idle-timeout", "600")
    results: dict[str, Any] = {"files": len(files), "dictations": dictations}
    try:
        compute = str(through_whisperd_warm(local, files[0])["compute_type"])
        results["local"] = {"release_to_text_ms": release_costs(local, utterances)}
        servers: dict[str, Callable[..., Any]] = {
            "wyoming": lambda: remote_servers.wyoming_faster_whisper(tmp, compute),
            "openai": lambda: remote_servers.faster_whisper_server(tmp, compute),
        }
        for kind, server_of in servers.items():
            with server_of() as server:
                results[kind] = measure(kind, server.url, files, utterances, tmp)
    finally:
        stop_daemon(local)
        shutil.rmtree(tmp, ignore_errors=True)
    results["load"] = Path("/proc/loadavg").read_text().split()[0]
    write_report(results, out)
    return results


def through_whisperd_warm(daemon: RunningDaemon, path: Path) -> dict[str, Any]:
    with connect(daemon, timeout=300) as sock:
        return transcribe(sock, "warm", path.read_bytes())[1]


def release_costs(daemon: RunningDaemon, utterances: list[material.Item]) -> list[float]:
    dictate(daemon, utterances[0].pcm16())  # warm
    costs = []
    for item in utterances:
        seconds, reply = dictate(daemon, item.pcm16())
        assert reply["type"] == "result", reply
        costs.append(round(seconds * 1000, 1))
    return costs


def measure(
    kind: str, url: str, files: list[Path], utterances: list[material.Item], tmp: Path
) -> dict[str, Any]:
    direct = direct_openai if kind == "openai" else direct_wyoming
    direct(url, files[0])  # warm: the server loads its model on first use
    config = f'[daemon]\nengine = "remote"\nremote_url = "{url}"\nfallback = "none"\n'
    (tmp / f"d-{kind}").mkdir()
    daemon = start_daemon(tmp / f"d-{kind}", "--idle-timeout", "600", config=config)
    try:
        through_whisperd_warm(daemon, files[0])
        straight, via = both_ways(daemon, files, direct, url)
        release = release_costs(daemon, utterances)
    finally:
        stop_daemon(daemon)
    same = sum(words(a[1]) == words(b[1]) for a, b in zip(straight, via, strict=True))
    overhead = [b[0] - a[0] for a, b in zip(straight, via, strict=True)]
    return {
        "direct_ms": [round(t * 1000, 1) for t, _ in straight],
        "whisperd_ms": [round(v[0] * 1000, 1) for v in via],
        "overhead_ms": [round(t * 1000, 1) for t in overhead],
        "same_words": same,
        # whisperd's own account of each request: its decoder process, the remote's answer
        "audio_decode_ms": [round(v[2]["audio_decode"] * 1000, 1) for v in via],
        "remote_exchange_ms": [round(v[2]["decode"] * 1000, 1) for v in via],
        "release_to_text_ms": release,
    }


def write_report(results: dict[str, Any], out: Path) -> None:
    lines = [
        "# Remote engine: whisperd in front of a speech server on loopback",
        "",
        "`python -m bench.remote` (bench/remote.py says how). Medians, milliseconds, on this "
        "machine (2 shared cores, tiny.en, CPU) — the server, whisperd and the client share "
        "the cores, so a real GPU server's figures differ; the overhead is what whisperd adds. "
        f"Load average at the end: {results.get('load', '?')}.",
        "",
        f"## The same {results['files']} files, one at a time",
        "",
        "| remote | direct | through whisperd | overhead | of it: decoder process | "
        "whisperd's remote exchange | same words |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("wyoming", "openai"):
        r = results[kind]
        lines.append(
            f"| {kind} | {ms(r['direct_ms'])} | {ms(r['whisperd_ms'])} | "
            f"{ms(r['overhead_ms'])} | {ms(r['audio_decode_ms'])} | "
            f"{ms(r['remote_exchange_ms'])} | {r['same_words']}/{results['files']} |"
        )
    lines += [
        "",
        f"## Dictation: release → text ({results['dictations']} live streams of 5 s)",
        "",
        "| engine | audio sent | release → result |",
        "|---|---|---|",
        f"| wyoming remote | while spoken | {ms(results['wyoming']['release_to_text_ms'])} |",
        f"| openai remote | at release | {ms(results['openai']['release_to_text_ms'])} |",
        f"| local (no remote) | — | {ms(results['local']['release_to_text_ms'])} |",
        "",
    ]
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--dictations", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/remote.md"))
    args = parser.parse_args(argv)
    results = run(args.files, args.dictations, args.out)
    print(args.out.read_text())
    return (
        0 if all(results[k]["same_words"] == results["files"] for k in ("wyoming", "openai")) else 1
    )


if __name__ == "__main__":
    sys.exit(main())
