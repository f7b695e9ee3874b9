"""Real whisperd processes for the benchmark: on a temporary socket, configured through a
config file under a temporary ``XDG_CONFIG_HOME``, or socket-activated by
``systemd-socket-activate`` (real ``LISTEN_FDS``) for cold starts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from whisperd.client import Client

REPO = Path(__file__).resolve().parent.parent


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def write_config(xdg: Path, daemon: dict[str, Any]) -> Path:
    path = xdg / "whisperd" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[daemon]"] + [f"{k} = {toml_value(v)}" for k, v in daemon.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak) and RssAnon of a process, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                out[key] = int(rest.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (our temporary socket path)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry) != os.getpid() and alive(int(entry)):
            found.append(int(entry))
    return found


def transcribe(
    socket_path: Path | str,
    data: bytes,
    fmt: str = "pcm",
    options: dict[str, Any] | None = None,
) -> tuple[float, dict[str, Any]]:
    """One request on a new connection, as whisperctl and whisperd-keys make them:
    connect, hello, transcribe, audio, end, result. Returns (wall seconds, result)."""
    started = time.perf_counter()
    client = Client.connect(str(socket_path), timeout=900, autostart=False)
    try:
        if fmt == "pcm":
            stream = client.start_stream(16000, 1, "s16le", options or {})
        else:
            stream = client.start_file(options or {})
        stream.send(data)
        result = stream.finish()
    finally:
        client.close()
    return time.perf_counter() - started, result


class Daemon:
    """``python -m whisperd.server --socket ...`` with its own config file."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        config: dict[str, Any] | None = None,
        model: str | None = None,
        idle_timeout: float = 3600,
    ) -> None:
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)  # the socket's directory: whisperd refuses one others can enter
        self.name = name
        self.xdg = self.dir / "xdg"
        self.config = dict(config or {})
        write_config(self.xdg, self.config)
        self.socket = self.dir / "whisperd.sock"
        self.log = self.dir / "whisperd.log"
        self.model = model
        self.idle_timeout = idle_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in (
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "NOTIFY_SOCKET",
            "WHISPERD_SOCKET",
            "JOURNAL_STREAM",
            "INVOCATION_ID",
        ):
            env.pop(key, None)
        env["XDG_CONFIG_HOME"] = str(self.xdg)
        env["XDG_RUNTIME_DIR"] = str(self.dir)
        return env

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "whisperd.server",
            "--socket",
            str(self.socket),
            "--idle-timeout",
            str(self.idle_timeout),
        ]
        if self.model:
            argv += ["--model", self.model]
        return argv

    def start(self, load: bool = True, warm: bytes | None = None) -> Daemon:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                cwd=REPO,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"whisperd {self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                Client.connect(str(self.socket), timeout=5, autostart=False).close()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        if load:
            with Client.connect(str(self.socket), timeout=300, autostart=False) as client:
                self.load_reply = client.load()
        if warm is not None:  # the first transcription pays one-time costs: not "warm"
            transcribe(self.socket, warm)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def status(self) -> dict[str, Any]:
        with Client.connect(str(self.socket), timeout=30, autostart=False) as client:
            return client.status()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def activated_request(
    workdir: Path,
    name: str,
    data: bytes,
    fmt: str,
    config: dict[str, Any] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """One cold request: ``systemd-socket-activate -l SOCK python -m whisperd.server``
    listens; the clock starts at connect, which starts a fresh whisperd (real LISTEN_FDS):
    process start, imports, model load and the transcription are all in the figure."""
    if shutil.which("systemd-socket-activate") is None:
        raise RuntimeError("systemd-socket-activate is not installed")
    base = workdir / name
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)  # the socket's directory: whisperd refuses one others can enter
    xdg = base / "xdg"
    write_config(xdg, dict(config or {}))
    sock = base / "act.sock"
    if sock.exists():
        sock.unlink()
    argv = [
        "systemd-socket-activate",
        "-l",
        str(sock),
        "-E",
        f"XDG_CONFIG_HOME={xdg}",
        "-E",
        f"XDG_RUNTIME_DIR={base}",
        sys.executable,
        "-m",
        "whisperd.server",
        "--idle-timeout",
        "600",
    ]
    if model:
        argv += ["--model", model]
    log = base / "whisperd.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle
        )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"systemd-socket-activate did not listen: {log.read_text()}")
            time.sleep(0.005)
        time.sleep(0.1)  # bound and listening (it logs "Listening on" after listen())
        wall, result = transcribe(sock, data, fmt)
        status = {}
        with Client.connect(str(sock), timeout=30, autostart=False) as client:
            status = client.status()
        return {
            "wall": wall,
            "result": result,
            "socket_activated": status.get("socket_activated"),
            "pid": status.get("pid"),
            "launcher_pid": process.pid,
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if sock.exists():
            sock.unlink()
