"""Nothing leaves the machine, and whisperd writes only where docs/hardening.md says
(issue 11, item 10).

A real daemon serves a real transcription with HOME, TMPDIR, the working directory and the
XDG directories inside a fresh tree; every file in the tree afterwards must be one the docs
name (the socket and its lock in the runtime directory; the log is our own redirection,
outside the tree). Under strace, also every file the daemon opened for writing or created
anywhere on the machine. Before whisperd/privacy.py, ONNX Runtime's import wrote a device
id and a telemetry queue into ~/.cache/Microsoft/DeveloperTools/.onnxruntime/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import shared_audio, wait_for_socket, words

# ONNX Runtime keeps quiet on CI machines it recognises (these variables, read from its
# binary) and in its own unit tests: the daemon must not depend on that, so they go.
QUIETING = (
    "CI TF_BUILD GITHUB_ACTIONS GITLAB_CI CIRCLECI TRAVIS JENKINS_URL CODEBUILD_BUILD_ID "
    "BUILDKITE TEAMCITY_VERSION APPVEYOR BITBUCKET_BUILD_NUMBER ORT_RUNNING_UNIT_TESTS "
    "ORT_DISABLE_TELEMETRY HF_HUB_DISABLE_TELEMETRY DO_NOT_TRACK DISABLE_TELEMETRY "
    "HF_HUB_OFFLINE TRANSFORMERS_OFFLINE"
).split()
RELOCATING = (
    "XDG_CACHE_HOME XDG_DATA_HOME XDG_STATE_HOME HF_HOME HF_HUB_CACHE CACHE_DIRECTORY".split()
)
CACHE = "home/.cache/whisperd"
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
FILE_CALL = re.compile(r'^\d+\s+(\w+)\((?:AT_FDCWD|\d+(?:<[^>]*>)?), "([^"]*)"(.*)$')


def tree_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def clean_env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in QUIETING + RELOCATING}
    env.pop("LISTEN_FDS", None)
    env.pop("NOTIFY_SOCKET", None)
    env.update(
        HOME=str(tree / "home"),
        TMPDIR=str(tree / "tmp"),
        XDG_RUNTIME_DIR=str(tree / "run"),
        XDG_CONFIG_HOME=str(tree / "home" / ".config"),
    )
    return env


def written_paths(trace: str, cwd: Path) -> set[str]:
    """Files the traced processes opened for writing or created (successful calls only)."""
    paths: set[str] = set()
    for line in trace.splitlines():
        m = FILE_CALL.match(line)
        if not m or "= -1" in m.group(3):
            continue
        call, path, rest = m.groups()
        if call.startswith("open") and not WRITE_FLAGS.search(rest):
            continue
        paths.add(os.path.normpath(os.path.join(cwd, path)))
    return paths


def allowed(path: str, tree: Path) -> bool:
    if path in ("/dev/null", "/dev/tty") or path.startswith("/proc/"):
        return True
    if path.startswith("/dev/shm/sem."):
        # Python's multiprocessing makes its locks as POSIX semaphores: created and
        # unlinked at once, no content (checked below: none is left behind).
        return not os.path.exists(path)
    if path.startswith(str(tree / "run") + "/"):
        return True
    # the CPU thread count measured once (docs/hardening.md), written atomically
    made = ("home/.cache", CACHE, f"{CACHE}/cpu-threads.json")
    if path in {str(tree / name) for name in made}:
        return True
    # its temporary file, renamed over it
    return bool(re.fullmatch(re.escape(str(tree / CACHE)) + r"/cpu-threads\.\w+\.tmp", path))


def test_a_full_request_writes_nothing_outside_the_documented_places(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for sub in ("home/.config", "tmp", "cwd"):
        (tree / sub).mkdir(parents=True)
    (tree / "run").mkdir(mode=0o700)
    env = clean_env(tree)
    sock = tree / "run" / "whisperd.sock"
    trace = tmp_path / "trace"
    command = [sys.executable, "-m", "whisperd.server", "--socket", str(sock)]
    strace = shutil.which("strace")
    if strace:
        calls = "open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat"
        command = [strace, "-f", "-qq", "-o", str(trace), "-e", f"trace={calls}", *command]
    before = tree_files(tree)
    log_path = tmp_path / "whisperd.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=tree / "cwd", env=env, stdout=log_file, stderr=log_file
        )
    try:
        wait_for_socket(sock, process, timeout=120)
        ctl = [sys.executable, "-m", "whisperd.cli", "--socket", str(sock), "--timeout", "300"]
        done = subprocess.run(
            [*ctl, "transcribe", str(shared_audio("jfk.flac"))],
            env=env,
            cwd=tree / "cwd",
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stderr + log_path.read_text()
        assert "country" in words(done.stdout), done.stdout
        status = subprocess.run(
            [*ctl, "status"], env=env, capture_output=True, text=True, timeout=60
        )
        pid = int(re.search(r"\(pid (\d+)\)", status.stdout).group(1))  # type: ignore[union-attr]
        os.kill(pid, signal.SIGTERM)  # the daemon itself, not strace
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    new = sorted(tree_files(tree) - before)
    assert not (tree / "home" / ".cache" / "Microsoft").exists(), new
    documented = {"home/.cache", CACHE, f"{CACHE}/cpu-threads.json"}
    outside = [p for p in new if not p.startswith("run") and p not in documented]
    assert outside == [], f"written outside the runtime directory: {outside}"
    if strace:
        written = written_paths(trace.read_text(), tree / "cwd")
        assert written, "strace saw no write at all: the trace is not working"
        stray = sorted(p for p in written if not allowed(p, tree))
        assert stray == [], json.dumps(stray, indent=1)
