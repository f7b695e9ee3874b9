"""What whisperd-keys knows about whisperd without starting it: the tracker (pure), the
parsers, and the listener probe against a real listening Unix socket."""

from __future__ import annotations

import socket
from pathlib import Path

from whisperd.keys.daemonstate import (
    DaemonTracker,
    Probe,
    parse_proc_net_unix,
    parse_systemctl_show,
    probe_listener,
)
from whisperd.keys.status import DaemonSeen
from whisperd.modelstatus import idle_text

RUNNING_A = Probe(True, "pid:100")
RUNNING_B = Probe(True, "pid:200")
STOPPED = Probe(False)


def test_model_is_loaded_only_in_the_process_that_answered_a_dictation() -> None:
    tracker = DaemonTracker()
    steps = [
        tracker.observe(None),
        tracker.observe(STOPPED),
        tracker.observe(RUNNING_A),  # started by someone: loaded or not, who knows
        tracker.dictation_answered(RUNNING_A),
        tracker.observe(RUNNING_A),
        tracker.observe(RUNNING_B),  # restarted: a new process, the model not known
        tracker.dictation_answered(RUNNING_B),
        tracker.observe(STOPPED),  # idle exit: the model's memory is gone
        tracker.observe(RUNNING_B),  # same pid again after a stop: not the same run
        tracker.dictation_answered(None),  # answered, but nothing can be looked at
    ]
    assert steps == [
        DaemonSeen(None, None),
        DaemonSeen(False, False),
        DaemonSeen(True, None),
        DaemonSeen(True, True),
        DaemonSeen(True, True),
        DaemonSeen(True, None),
        DaemonSeen(True, True),
        DaemonSeen(False, False),
        DaemonSeen(True, None),
        DaemonSeen(None, None),
    ]


def test_the_daemons_status_line_says_loaded_or_not_unloads_included() -> None:
    tracker = DaemonTracker()
    steps = [
        tracker.dictation_answered(RUNNING_A),
        tracker.observe(Probe(True, "pid:100", model_loaded=False)),  # whisperctl unload
        tracker.observe(Probe(True, "pid:100")),  # busy (transcribing for someone else)
        tracker.observe(Probe(True, "pid:100", model_loaded=True)),  # whisperctl load
        tracker.observe(Probe(True, "pid:100")),
    ]
    assert steps == [
        DaemonSeen(True, True),
        DaemonSeen(True, False),
        DaemonSeen(True, None),  # not "loaded" from the dictation before the unload
        DaemonSeen(True, True),
        DaemonSeen(True, True),
    ]


def test_a_dictation_answered_without_the_model_leaves_it_unloaded() -> None:
    """A remote engine, or a dictation too short or silent for the model: the daemon's
    status line right after the answer says not loaded, and that is what is shown."""
    tracker = DaemonTracker()
    idle_unloaded = Probe(True, "pid:100", model_loaded=False)
    assert tracker.dictation_answered(idle_unloaded) == DaemonSeen(True, False)
    assert tracker.observe(Probe(True, "pid:100")) == DaemonSeen(True, None)


def test_systemctl_show_reads_the_model_from_the_status_line() -> None:
    shown = "LoadState=loaded\nActiveState=active\nMainPID=7\nStatusText={}\n"
    assert parse_systemctl_show(shown.format(idle_text(False, "tiny.en", "cpu", 0))) == Probe(
        True, "pid:7", False
    )
    ready = shown.format(idle_text(True, "tiny.en", "cpu", 3))
    assert parse_systemctl_show(ready) == Probe(True, "pid:7", True)
    assert parse_systemctl_show(shown.format("transcribing")) == Probe(True, "pid:7", None)
    loading = shown.format("loading the model")  # perhaps again, after an unload
    assert parse_systemctl_show(loading) == Probe(True, "pid:7", False)
    assert parse_systemctl_show(shown.format("")) == Probe(True, "pid:7", None)
    stopped = "LoadState=loaded\nActiveState=inactive\nMainPID=0\nStatusText=exiting\n"
    assert parse_systemctl_show(stopped) == Probe(False)


def test_systemctl_show() -> None:
    active = "LoadState=loaded\nActiveState=active\nMainPID=4242\n"
    assert parse_systemctl_show(active) == Probe(True, "pid:4242")
    inactive = "MainPID=0\nLoadState=loaded\nActiveState=inactive\n"
    assert parse_systemctl_show(inactive) == Probe(False)
    failed = "LoadState=loaded\nActiveState=failed\nMainPID=0\n"
    assert parse_systemctl_show(failed) == Probe(False)
    assert parse_systemctl_show("LoadState=not-found\nActiveState=inactive\nMainPID=0\n") is None
    assert parse_systemctl_show("") is None


PROC_NET_UNIX = """\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 31337 /run/user/1000/whisperd.sock
0000000000000000: 00000003 00000000 00000000 0001 03 31338 /run/user/1000/whisperd.sock
0000000000000000: 00000002 00000000 00010000 0001 01 40000 /run/user/1000/other.sock
0000000000000000: 00000003 00000000 00000000 0001 03 40001
"""


def test_proc_net_unix() -> None:
    assert parse_proc_net_unix(PROC_NET_UNIX, "/run/user/1000/whisperd.sock") == Probe(
        True, "inode:31337"
    )
    # a connected (not listening) socket on the path is not a daemon
    connected_only = "\n".join(PROC_NET_UNIX.splitlines()[::2])
    assert parse_proc_net_unix(connected_only, "/run/user/1000/whisperd.sock") == Probe(False)
    assert parse_proc_net_unix(PROC_NET_UNIX, "/run/user/1000/gone.sock") == Probe(False)


def test_listener_probe_sees_a_real_socket_come_and_go(tmp_path: Path) -> None:
    path = str(tmp_path / "whisperd.sock")
    assert probe_listener(path) == Probe(False)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        assert probe_listener(path) == Probe(False), "bound but not listening yet"
        server.listen()
        first = probe_listener(path)
        assert first is not None and first.running and first.identity.startswith("inode:")
    finally:
        server.close()
    assert probe_listener(path) == Probe(False), "the file stays, the listener is gone"
