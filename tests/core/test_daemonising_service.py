"""A command that daemonises (its parent exits 0 at once) is refused with one sentence that
says to keep it in the foreground, and the daemon it left behind is stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_helpers import answers, pids_in, running, toy_argv, wait_for

from pytest_mlxstack.process.services import ServiceManager, ServiceStartError


def test_a_daemonising_command_is_told_to_stay_in_the_foreground(
    manager: ServiceManager, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    argv = toy_argv("daemonise", "--delay", "0.5", "--pid-file", str(pid_file))

    with pytest.raises(ServiceStartError) as info:
        manager.start("daemon", argv, timeout=30)

    error = info.value
    message = str(error)
    assert error.exit_code == 0
    assert "exited with code 0 during start-up" in message
    assert "stays in the foreground" in message
    assert "daemonises" in message
    assert "\n" not in message
    assert "last lines" not in message
    # The daemon it forked carried the service's marker: it was found and stopped too.
    port = int(message.split(".log")[0].rsplit("-", 1)[1])
    assert wait_for(lambda: [pid for pid in pids_in(pid_file) if running(pid)] == [], 10)
    assert not answers(port)
    assert manager.registry.records() == []
