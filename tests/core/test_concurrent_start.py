"""Services started together (``StartGroup``): Ctrl-C while they are still starting leaves
nothing running, and a start learns its port before the service is ready.

The interrupted program is a real Python process that starts three slow toy servers at once
(each sleeps before it binds its port) and is sent SIGINT while all three are still starting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from core_helpers import TOY_SERVER, answers, running, toy_argv, wait_for

from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.process.services import (
    ManagedService,
    ServiceManager,
    ServiceStartCancelled,
)
from pytest_mlxstack.process.together import StartGroup

STARTING_THREE = """
import sys
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.process.together import StartGroup

home = sys.argv[1]
argv = [sys.executable, {toy!r}, "--port", "{{port}}", "--delay", "120"]
with ServiceManager(home, grace_period=1) as manager, StartGroup() as group:
    for number in range(3):
        group.submit(
            lambda number=number: manager.start(
                f"slow-{{number}}", argv, timeout=300, cancel=group.cancel
            )
        )
print("all started")
"""


def test_ctrl_c_while_three_services_start_together_leaves_none_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = tmp_path / "start_three.py"
    script.write_text(STARTING_THREE.format(toy=str(TOY_SERVER)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    program = subprocess.Popen(
        [sys.executable, str(script), str(home)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        registry = PidRegistry(home)  # a service is recorded as soon as its process runs
        assert wait_for(lambda: len(registry.records()) == 3, timeout=60), "not all three began"
        records = registry.records()
        assert all(running(record.pid) for record in records)
        program.send_signal(signal.SIGINT)
        out, err = program.communicate(timeout=60)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()

    assert program.returncode != 0
    assert b"KeyboardInterrupt" in err
    assert b"all started" not in out
    assert [record.pid for record in records if running(record.pid)] == []
    assert not any(answers(record.port) for record in records)
    assert PidRegistry(home).records() == []


def test_a_start_hears_its_port_before_the_service_answers(manager: ServiceManager) -> None:
    heard: list[tuple[int, bool]] = []

    def launched(service: ManagedService) -> None:
        heard.append((service.port, answers(service.port)))

    service = manager.start("late", toy_argv("behave", "--delay", "1"), on_launch=launched)

    assert heard == [(service.port, False)]  # told the port while it was not yet listening
    assert answers(service.port)


def test_a_cancelled_start_stops_its_service(manager: ServiceManager) -> None:
    cancel = threading.Event()
    launched: list[int] = []
    with StartGroup(cancel=cancel) as group:
        starting = group.submit(
            lambda: manager.start(
                "never",
                toy_argv("behave", "--delay", "120"),
                on_launch=lambda service: launched.append(service.pid),
                cancel=group.cancel,
            )
        )
        assert wait_for(lambda: len(launched) == 1)
        cancel.set()

    assert isinstance(starting.error, ServiceStartCancelled)
    assert "called off" in str(starting.error)
    assert not running(launched[0])
    assert manager.services == {}
    assert PidRegistry(manager.home).records() == []
