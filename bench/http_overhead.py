"""What a warm request costs through the OpenAI-compatible HTTP front against the Unix
socket: the same audio, the same warm whisperd, alternating the two paths.

    .venv/bin/python -m bench.http_overhead [--runs 20] [--audio ../shared/audio]

One whisperd (tiny.en, loaded and warmed) serves both its Unix socket and ``[http] listen``
on a free loopback port. Each run sends each clip once per path, alternating which goes
first: the Unix path as whisperctl does (a new connection, hello, the file, the result),
HTTP as a client does (a new TCP connection, a multipart POST, the JSON answer; and once
more through OpenAI's own client, which builds its httpx client each call). Two clips: a
3 s dictation-sized cut (where a fixed cost shows) and jfk.flac (11 s). Wall time per
request, median (fastest) in ms, and the part of it outside the daemon's own time for the
request (its log's "total", from the last audio byte to the result): connecting, the
upload, the answer. The overhead of HTTP is the difference of the latter's medians, as the
model's time varies far more than that on a loaded machine. The texts are checked equal on
every run. Results: docs/serving.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.daemon import Daemon, transcribe

ROOT = Path(__file__).resolve().parent.parent


def unix_text(daemon: Daemon, data: bytes) -> str:
    return str(transcribe(daemon.socket, data, "file")[1]["text"])


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cut(source: Path, seconds: float, folder: Path) -> bytes:
    target = folder / f"cut{seconds:.0f}.flac"
    subprocess.run(["sox", str(source), str(target), "trim", "0", str(seconds)], check=True)
    return target.read_bytes()


def http_request(port: int, data: bytes) -> str:
    """One POST on a new connection, as a one-shot client (curl) makes it."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n'
            "Content-Type: audio/flac\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}\r\nContent-Disposition: form-data; "
        f'name="model"\r\n\r\nwhisper-1\r\n--{boundary}--\r\n'.encode()
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        conn.request("POST", "/v1/audio/transcriptions", body, headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {answer[:300]!r}")
        return str(json.loads(answer)["text"])
    finally:
        conn.close()


def openai_request(port: int, data: bytes) -> str:
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local", max_retries=0)
    try:
        result = client.audio.transcriptions.create(model="whisper-1", file=("a.flac", data))
        return result.text
    finally:
        client.close()


TOTAL = re.compile(r"request (\S+): audio .* total ([0-9.]+) s")


def daemon_totals(log: Path) -> list[float]:
    """The daemon's own time for each request so far, in order (its log's "total": from
    the last audio byte to the result, model time included)."""
    return [float(m.group(2)) for m in TOTAL.finditer(log.read_text(errors="replace"))]


def measure(
    paths: dict[str, Callable[[], str]], runs: int, log: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall time per request and path, and the part of it outside the daemon's own time
    (connection, upload, answer): on a loaded machine the model's time varies by hundreds
    of ms from one request to the next, the part outside it does not."""
    walls: dict[str, list[float]] = {name: [] for name in paths}
    order_sent: list[str] = []
    names = list(paths)
    before = len(daemon_totals(log))
    for run in range(runs):
        texts = set()
        for name in names if run % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            texts.add(paths[name]())
            walls[name].append(time.perf_counter() - started)
            order_sent.append(name)
        if len(texts) != 1:
            raise RuntimeError(f"the paths gave different texts: {texts}")
    totals = daemon_totals(log)[before:]
    if len(totals) != len(order_sent):
        raise RuntimeError(f"{len(totals)} requests in the log, {len(order_sent)} sent")
    outside: dict[str, list[float]] = {name: [] for name in paths}
    seen = dict.fromkeys(paths, 0)
    for name, total in zip(order_sent, totals, strict=True):
        outside[name].append(walls[name][seen[name]] - total)
        seen[name] += 1
    return walls, outside


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ({min(values) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--audio", type=Path, default=ROOT.parent / "shared" / "audio")
    args = parser.parse_args()
    jfk = (args.audio / "jfk.flac").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        clips = {"3 s": cut(args.audio / "jfk.flac", 3.0, Path(tmp)), "jfk 11 s": jfk}
        port = free_port()
        daemon = Daemon(Path(tmp), "http")
        config = daemon.xdg / "whisperd" / "config.toml"
        config.write_text(config.read_text() + f'[http]\nlisten = "127.0.0.1:{port}"\n')
        with daemon.start(load=True):
            for data in clips.values():  # one of each through every path first: warm
                transcribe(daemon.socket, data, "file")
                http_request(port, data)
                openai_request(port, data)
            print(f"ms per warm request, median (fastest) of {args.runs}; load {load()}")
            print("| clip | path | wall | outside the daemon's time | overhead vs Unix |")
            print("|---|---|---|---|---|")
            for name, data in clips.items():
                walls, outside = measure(
                    {
                        "Unix socket": lambda d=data: unix_text(daemon, d),
                        "HTTP": lambda d=data: http_request(port, d),
                        "HTTP, openai client": lambda d=data: openai_request(port, d),
                    },
                    args.runs,
                    daemon.log,
                )
                base = statistics.median(outside["Unix socket"])
                for path in walls:
                    extra = (statistics.median(outside[path]) - base) * 1000
                    print(
                        f"| {name} | {path} | {ms(walls[path])} | {ms(outside[path])} | "
                        f"{extra:+.1f} |"
                    )


if __name__ == "__main__":
    main()
