"""The post-processing hook: a program that reads the text on stdin and writes the result.

It is an argument list run directly, never a shell command line, and the text only ever
travels on its standard input, so nothing in what was said can become a command. The
hook runs in its own session with a time limit; when it cannot start, exits non-zero,
times out, writes nothing (only whitespace) or writes invalid UTF-8, the original text
is used and the failure is logged, with sizes but never the text or the hook's output
(its stderr is read and dropped for the same reason: it may echo the text). Trailing
newlines of the output are removed, as the shell's ``$(...)`` does.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence

log = logging.getLogger("whisperd.text.hook")

DEFAULT_TIMEOUT = 5.0


class Hook:
    """``Hook(argv, timeout)(text)`` -> the hook's output, or ``text`` when it fails."""

    def __init__(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        if not argv or not argv[0]:
            raise ValueError("a hook needs a program to run")
        self.argv = list(argv)
        self.timeout = timeout
        self.failures = 0

    def __call__(self, text: str) -> str:
        if not text.strip():
            return text
        output = self._run(text.encode("utf-8"))
        if output is None:
            self.failures += 1
            return text
        return output

    def _run(self, data: bytes) -> str | None:
        name = os.path.basename(self.argv[0])
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: killed whole on timeout
                close_fds=True,
            )
        except OSError as exc:
            log.warning(
                "post-processing hook %s cannot start (%s); the text is used unchanged",
                name,
                exc.strerror or type(exc).__name__,
            )
            return None
        try:
            out, err = process.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            log.warning(
                "post-processing hook %s did not finish within %.1f s; killed, the text "
                "(%d bytes) is used unchanged",
                name,
                self.timeout,
                len(data),
            )
            return None
        return self._judge(name, process.returncode, out, len(err), len(data))

    def _judge(self, name: str, status: int, out: bytes, err_bytes: int, sent: int) -> str | None:
        if status != 0:
            log.warning(
                "post-processing hook %s exited with status %d (%d bytes on stderr); the "
                "text (%d bytes) is used unchanged",
                name,
                status,
                err_bytes,
                sent,
            )
            return None
        try:
            text = out.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            log.warning("post-processing hook %s wrote invalid UTF-8; text unchanged", name)
            return None
        if not text.strip():
            log.warning(
                "post-processing hook %s wrote nothing for %d bytes; the text is used unchanged",
                name,
                sent,
            )
            return None
        return text


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the hook and anything it started (a script's ``sleep`` would otherwise keep
    the pipes open), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pipe in (process.stdin, process.stdout, process.stderr):
        try:
            if pipe is not None:
                pipe.close()  # not read to the end: a child outside the group may hold it
        except OSError:
            pass
    process.wait()
