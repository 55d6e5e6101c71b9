"""Orphans that ignore SIGTERM are reaped together: N of them cost one grace period, not N.

Each orphan notes every SIGTERM it gets, with how many of the other orphans were still
running at that moment. Reaped one at a time, the second would get its SIGTERM only after the
first had been SIGKILLed; reaped together, each gets it while the other still runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
from core_helpers import answers, pids_in, running, toy_argv

from pytest_mlxstack.process.registry import Owner, PidRegistry
from pytest_mlxstack.process.services import ServiceManager


def _gone_owner() -> Owner:
    """The identity of a process that has exited (the session that was SIGKILLed)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    owner = Owner("pytest", child.pid, psutil.Process(child.pid).create_time())
    child.communicate(b"")
    assert not owner.is_alive()
    return owner


def test_orphans_that_ignore_sigterm_are_reaped_together(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pid_file, signal_log = tmp_path / "pids", tmp_path / "signals"
    argv = toy_argv("note-term", "--pid-file", str(pid_file), "--signal-log", str(signal_log))
    left = ServiceManager(home, owner=_gone_owner(), reap=False)
    ports = [left.start(name, argv).port for name in ("first", "second")]
    try:
        reaped = PidRegistry(home).reap_orphans(grace_period=2)

        assert sorted(record.name for record in reaped) == ["first", "second"]
        assert [pid for pid in pids_in(pid_file) if running(pid)] == []
        assert [port for port in ports if answers(port)] == []
        notes = [line.split() for line in signal_log.read_text().splitlines()]
        assert sorted(int(pid) for _, pid, _ in notes) == sorted(pids_in(pid_file))
        # Each got its SIGTERM while the other still ran: neither waited for the other's end.
        assert [others for _, _, others in notes] == ["1", "1"]
        assert PidRegistry(home).records() == []
    finally:
        left.stop_all()
