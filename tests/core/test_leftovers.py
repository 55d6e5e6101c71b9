"""What a SIGKILLed session leaves on disk is removed by the next one, and only that.

A killed session cannot remove its run's pool folder (``<home>/pools/<run>/``) nor its xdist
worker folder (``mlxstack-workers-*`` in the temp directory). The next session removes the
folders whose owner is gone, and leaves alone one whose owner still runs and one that names
no owner. ``mlxstack status`` meanwhile says the killed session's services have no owner.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from core_helpers import TOY_SERVER, wait_for

from pytest_mlxstack.process.leftovers import WORKER_DIR_PREFIX, claim
from pytest_mlxstack.process.registry import Owner, PidRegistry
from pytest_mlxstack.wiring.skips import skip_no_litellm, skip_no_vllm

KILLED_SESSION = f"""
import os, sys, time
from pathlib import Path

def test_hangs(mlx_server_pool, service_manager):
    service_manager.start("toy", [sys.executable, {str(TOY_SERVER)!r}, "--port", "{{port}}"])
    Path(os.environ["READY_FILE"]).write_text(str(mlx_server_pool.directory))
    time.sleep(600)
"""


@skip_no_vllm
@skip_no_litellm
def test_the_next_session_removes_what_a_killed_session_left(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, temp = pytester.path / "mlxhome", pytester.path / "tmp"
    temp.mkdir()
    ready = pytester.path / "ready"
    monkeypatch.setenv("MLXSTACK_HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(temp))  # the sessions' temp directory: only theirs here
    env = dict(os.environ, READY_FILE=str(ready))
    pytester.makepyfile(test_killed=KILLED_SESSION)
    killed = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_killed.py"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(ready.exists, timeout=60), "the session to kill never got going"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    pool_dir = Path(ready.read_text())
    worker_dirs = list(temp.glob(WORKER_DIR_PREFIX + "*"))
    assert pool_dir.is_dir()
    assert len(worker_dirs) == 1
    # Folders the next session must not touch: one whose owner runs (this test), one that
    # names no owner at all.
    live = claim(home / "pools" / "live-run", Owner.current()).parent
    unowned = home / "pools" / "unowned-run"
    unowned.mkdir()

    status = subprocess.run(
        [sys.executable, "-m", "pytest_mlxstack", "status", "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert f"pytest {killed.pid} (gone)" in status.stdout
    assert "1 service(s) belong to a session that is gone" in status.stdout

    pytester.makepyfile(test_next="def test_nothing(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_next.py")

    result.assert_outcomes(passed=1)
    assert "removed 2 folder(s) left by a session that was killed" in result.stdout.str()
    assert not pool_dir.exists()
    assert not worker_dirs[0].exists()
    assert live.is_dir()
    assert unowned.is_dir()
    assert PidRegistry(home).records() == []
