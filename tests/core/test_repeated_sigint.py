"""Ctrl-C pressed again and again while pytest stops its services: the services still stop.

Each trial runs a real pytest session that holds real services (a toy server that ignores
SIGTERM, so stopping it takes the whole grace period, and one that stops at once), then sends
a burst of SIGINTs at random moments, the first one while the test runs. The services must
be gone and their ports free afterwards.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from core_helpers import TOY_SERVER, answers, pids_in, running, wait_for

from pytest_mlxstack.process.registry import PidRegistry

TRIALS = 5
BURST = 7
BURST_SPAN_S = 1.6  # the grace period is 1 s, so the burst covers the whole cleanup

HOLDING_SESSION = """
import os, sys, time
from pathlib import Path

TOY = [sys.executable, {toy!r}, "--port", "{{port}}"]

def test_holds(service_manager, session_service_manager):
    pid_file = os.environ["PID_FILE"]
    a = service_manager.start("stubborn", TOY + ["--mode", "ignore-term", "--pid-file", pid_file])
    b = session_service_manager.start("plain", TOY + ["--pid-file", pid_file])
    Path(os.environ["PORTS_FILE"]).write_text(f"{{a.port}} {{b.port}}")
    Path(os.environ["READY_FILE"]).write_text("ready")
    time.sleep(600)
"""


def _trial(directory: Path, home: Path, rng: random.Random) -> tuple[list[int], list[int], int]:
    """One session interrupted by a burst of SIGINTs: (pids still running, ports still
    answering, pytest's exit code)."""
    directory.mkdir()
    (directory / "test_hold.py").write_text(HOLDING_SESSION.format(toy=str(TOY_SERVER)))
    pid_file, ready, ports_file = directory / "pids", directory / "ready", directory / "ports"
    env = dict(
        os.environ,
        MLXSTACK_HOME=str(home),
        PID_FILE=str(pid_file),
        READY_FILE=str(ready),
        PORTS_FILE=str(ports_file),
    )
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mlx-grace-period=1"],
        cwd=directory,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(ready.exists, timeout=60), "the inner session never got its services up"
        assert wait_for(lambda: len(pids_in(pid_file)) == 2)
        moments = sorted(rng.uniform(0, BURST_SPAN_S) for _ in range(BURST - 1))
        begun = time.monotonic()
        session.send_signal(signal.SIGINT)
        for moment in moments:
            time.sleep(max(0.0, begun + moment - time.monotonic()))
            if session.poll() is not None:
                break
            session.send_signal(signal.SIGINT)
        code = session.wait(timeout=60)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    pids = [pid for pid in pids_in(pid_file) if running(pid)]
    ports = [int(port) for port in ports_file.read_text().split() if answers(int(port))]
    return pids, ports, code


def test_a_burst_of_sigints_during_cleanup_leaves_nothing_running(
    pytester: pytest.Pytester,
) -> None:
    home = pytester.path / "mlxhome"
    rng = random.Random(16)
    try:
        for number in range(TRIALS):
            pids, ports, code = _trial(pytester.path / f"trial-{number}", home, rng)

            assert pids == [], f"trial {number}: services still running"
            assert ports == [], f"trial {number}: ports still answering"
            assert code == pytest.ExitCode.INTERRUPTED
            assert PidRegistry(home).records() == []
    finally:
        PidRegistry(home).reap_orphans(grace_period=1)
