"""The post-processing hook with real programs: one that works, one that fails, one that
hangs (with a child that keeps the pipes open), one that writes nothing; never a shell."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from whisperd.text.hook import Hook

SECRET = "my bank PIN is 4321; rm -rf ~ $(reboot) `id`"


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_a_working_hook_gets_the_text_on_stdin(tmp_path: Path) -> None:
    upper = script(tmp_path, "upper.sh", "tr a-z A-Z\n")
    assert Hook([upper])("hello, world") == "HELLO, WORLD"
    # arguments are passed as they are; the text is never part of a command line
    python = Hook([sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"])
    assert python(SECRET) == SECRET[::-1]


def test_the_text_is_never_run_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    echo = script(tmp_path, "cat.sh", "cat\n")
    text = f"hello; touch {marker} && $(touch {marker})"
    assert Hook([echo])(text) == text
    assert not marker.exists()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("echo oops >&2; echo partial; exit 3\n", "exited with status 3"),
        ("cat >/dev/null; printf '  \\n\\n'\n", "wrote nothing"),
        ("cat >/dev/null\n", "wrote nothing"),
        ("printf '\\377\\376'\n", "invalid UTF-8"),
    ],
)
def test_a_failing_hook_leaves_the_text_and_logs_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, body: str, why: str
) -> None:
    hook = Hook([script(tmp_path, "bad.sh", body)])
    with caplog.at_level(logging.WARNING, logger="whisperd.text.hook"):
        assert hook(SECRET) == SECRET
    assert why in caplog.text
    assert SECRET not in caplog.text and "4321" not in caplog.text
    assert "oops" not in caplog.text and "partial" not in caplog.text
    assert hook.failures == 1


def test_a_hanging_hook_is_killed_at_its_time_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "child.pid"
    # the script's own child holds stdout open: killing the script alone would hang. The
    # pid is written whole or not at all (a rename), and 2 s leave a loaded machine time
    # to start the script before the limit.
    body = f"sleep 300 & echo $! > {pid_file}.new && mv {pid_file}.new {pid_file}; wait\n"
    hang = script(tmp_path, "hang.sh", body)
    hook = Hook([hang], timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="whisperd.text.hook"):
        assert hook(SECRET) == SECRET
    assert "did not finish within 2.0 s" in caplog.text
    assert SECRET not in caplog.text
    assert pid_file.exists(), "the hook was killed before it started its child"
    child = int(pid_file.read_text())
    # SIGKILL is delivered, not waited for: the script is reaped, its child may take a
    # moment to die (1 in 4 times still running right after, on this machine).
    assert _dies(child, within=30.0), f"the child survived: state {_state(child)}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return "gone"


def _dies(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while _state(pid) not in ("gone", "Z"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_missing_program_leaves_the_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="whisperd.text.hook"):
        assert Hook([str(tmp_path / "nope")])("text") == "text"
    assert "cannot start" in caplog.text


def test_blank_text_is_not_sent_and_trailing_newlines_go(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    hook = Hook([script(tmp_path, "c.sh", f"echo x >> {counter}; cat; printf '\\n\\n'\n")])
    assert hook("  ") == "  "
    assert not counter.exists()
    assert hook("a\nb") == "a\nb"


def test_a_hook_needs_a_program() -> None:
    with pytest.raises(ValueError, match="program"):
        Hook([])
