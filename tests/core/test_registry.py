"""The pid registry: a later session reaps what a killed one left running, and nothing else."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import psutil
from core_helpers import TOY_SERVER, Foreign, answers, pids_in, running, wait_for

from pytest_mlxstack.process.ports import port_is_free
from pytest_mlxstack.process.registry import Owner, PidRegistry, ServiceRecord
from pytest_mlxstack.process.services import ServiceManager

# A process that starts services through the library and then hangs (to be SIGKILLed), or
# detaches them and exits (like ``mlxstack up --detach``).
OWNER = """
import sys, time
from pytest_mlxstack.process.services import ServiceManager
home, toy, pid_file, how = sys.argv[1:5]
manager = ServiceManager(home, grace_period=1)
for mode in ("behave", "fork-child"):
    manager.start(mode, [sys.executable, toy, "--port", "{port}", "--mode", mode,
                         "--pid-file", pid_file])
ports = [s.port for s in manager.services.values()]
if how == "detach":
    manager.detach()
print(" ".join(map(str, ports)), flush=True)
if how == "hang":
    time.sleep(600)
"""


def run_owner(home: Path, pid_file: Path, how: str) -> tuple[subprocess.Popen[str], list[int]]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(home), str(TOY_SERVER), str(pid_file), how],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    ports = [int(p) for p in owner.stdout.readline().split()]
    assert len(ports) == 2, "the owner process did not start its services"
    assert wait_for(lambda: len(pids_in(pid_file)) == 3)  # behave + fork-child parent/child
    return owner, ports


def test_a_new_manager_reaps_what_a_sigkilled_owner_left_running(
    home: Path, tmp_path: Path, foreign: Foreign
) -> None:
    pid_file = tmp_path / "pids"
    owner, ports = run_owner(home, pid_file, "hang")
    owner.kill()  # no cleanup can run
    owner.wait()
    assert all(running(pid) for pid in pids_in(pid_file)), "orphans should still be running"
    assert len(PidRegistry(home).orphans()) == 2

    manager = ServiceManager(home, grace_period=1)

    assert sorted(r.name for r in manager.reaped) == ["behave", "fork-child"]
    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert all(port_is_free(port) for port in ports)
    assert PidRegistry(home).records() == []
    assert foreign.alive
    assert answers(foreign.port)


def test_services_of_a_live_owner_are_not_reaped(home: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    owner, _ = run_owner(home, pid_file, "hang")
    try:
        manager = ServiceManager(home, grace_period=1)

        assert manager.reaped == []
        assert all(running(pid) for pid in pids_in(pid_file))
    finally:
        owner.kill()
        owner.wait()
        PidRegistry(home).reap_orphans(grace_period=1)


# An xdist worker in miniature: it starts a service for a session that another process runs
# (the controller), then hangs in a test, outliving a SIGKILLed controller.
WORKER = """
import sys, time
from pytest_mlxstack.process.registry import Owner
from pytest_mlxstack.process.services import ServiceManager
home, toy, pid_file, controller_pid, controller_created = sys.argv[1:6]
session = Owner("pytest", int(controller_pid), float(controller_created))
manager = ServiceManager(home, grace_period=1, owner=Owner.current("pytest", session=session))
manager.start("svc", [sys.executable, toy, "--port", "{port}", "--pid-file", pid_file])
print(manager.get("svc").pid, flush=True)
time.sleep(600)
"""


def test_services_are_orphans_once_their_session_is_gone_even_if_their_owner_lingers(
    home: Path, tmp_path: Path
) -> None:
    controller = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    created = psutil.Process(controller.pid).create_time()
    args = [str(home), str(TOY_SERVER), str(tmp_path / "pids"), str(controller.pid), repr(created)]
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        service_pid = int(worker.stdout.readline())
        [record] = PidRegistry(home).records()
        assert record.owner.pid == worker.pid
        assert record.owner.session == Owner("pytest", controller.pid, created)
        assert PidRegistry(home).orphans() == []  # the whole session still runs

        controller.kill()
        controller.wait()
        assert worker.poll() is None, "the worker lingers, as xdist workers do"
        manager = ServiceManager(home, grace_period=1)

        assert [r.name for r in manager.reaped] == ["svc"]
        assert not running(service_pid)
        assert PidRegistry(home).records() == []
        assert worker.poll() is None  # only services are ever signalled, never their owner
    finally:
        for proc in (controller, worker):
            proc.kill()
            proc.wait()


def test_a_session_whose_pid_now_belongs_to_another_process_counts_as_gone() -> None:
    me = psutil.Process()
    earlier = Owner("pytest", me.pid, me.create_time() - 3600)  # same pid, an older process

    assert Owner.current("pytest", session=Owner.current()).is_alive()
    assert not Owner.current("pytest", session=earlier).is_alive()
    assert not Owner.current("pytest", session=dead_owner()).is_alive()


def test_a_linked_home_is_reaped_once_its_owner_is_gone(home: Path, tmp_path: Path) -> None:
    test_home, pid_file = tmp_path / "test-home", tmp_path / "pids"
    owner, ports = run_owner(test_home, pid_file, "hang")
    registry = PidRegistry(home)
    created = psutil.Process(owner.pid).create_time()
    try:
        registry.link(test_home, Owner("pytest", owner.pid, created))
        assert ServiceManager(home, grace_period=1).reaped == []  # its owner still runs
    finally:
        owner.kill()
        owner.wait()

    manager = ServiceManager(home, grace_period=1)
    PidRegistry(test_home).reap_orphans(grace_period=1)  # (only does anything if this failed)

    assert sorted(r.name for r in manager.reaped) == ["behave", "fork-child"]
    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert all(port_is_free(port) for port in ports)
    assert PidRegistry(test_home).records() == []
    assert list(registry.links_dir.iterdir()) == []  # followed no longer


def test_detached_services_survive_sessions_until_stopped_explicitly(
    home: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    owner, ports = run_owner(home, pid_file, "detach")
    assert owner.wait() == 0  # the owner exited normally, leaving its services up

    ServiceManager(home, grace_period=1)
    registry = PidRegistry(home)
    records = registry.records()

    assert all(running(pid) for pid in pids_in(pid_file))
    assert {r.owner.kind for r in records} == {"detached"}
    assert all(registry.is_alive(r) for r in records)
    assert all(answers(port) for port in ports)

    for record in records:
        registry.stop(record, grace_period=1)

    assert [pid for pid in pids_in(pid_file) if running(pid)] == []
    assert registry.records() == []


def dead_owner() -> Owner:
    """The identity of a process that has exited (a crashed pytest session)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(proc.pid).create_time()
    proc.wait()
    return Owner(kind="pytest", pid=proc.pid, create_time=created)


def record_for(pid: int, *, owner: Owner, **changes: object) -> ServiceRecord:
    proc = psutil.Process(pid)
    record = ServiceRecord(
        name="old",
        pid=pid,
        create_time=proc.create_time(),
        cmdline=tuple(proc.cmdline()),
        port=0,
        url="",
        log_path="",
        owner=owner,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_a_reused_pid_is_never_signalled_only_its_record_dropped(
    home: Path, foreign: Foreign
) -> None:
    registry = PidRegistry(home)
    pid = foreign.popen.pid
    # The same pid, but a different start time or command line: another process now.
    registry.add(record_for(pid, owner=dead_owner(), name="a", create_time=1.0))
    registry.add(record_for(pid, owner=dead_owner(), name="b", cmdline=("vllm-mlx", "serve")))

    reaped = registry.reap_orphans(grace_period=1)

    assert reaped == []
    assert registry.records() == []
    assert foreign.alive
    assert answers(foreign.port)


def test_records_are_complete_json_files(home: Path) -> None:
    with ServiceManager(home, grace_period=1) as manager:
        service = manager.start(
            "toy",
            [sys.executable, str(TOY_SERVER), "--port", "{port}"],
            labels={"stack": "demo"},
        )
        files = list((home / "run").glob("*.json"))
        data = json.loads(files[0].read_text())
        created = psutil.Process(service.pid).create_time()

    assert [f.name for f in files] == [f"toy-{service.pid}.json"]
    assert data["pid"] == service.pid
    assert data["create_time"] == created
    assert data["cmdline"] == list(service.argv)
    assert data["port"] == service.port
    assert data["url"] == service.url
    assert data["log_path"] == str(service.log_path)
    assert data["labels"] == {"stack": "demo"}
    owner = psutil.Process()
    assert data["owner"] == {
        "kind": "process",
        "pid": owner.pid,
        "create_time": owner.create_time(),
    }
    assert not list((home / "run").glob(".tmp-*"))


def test_unreadable_record_files_are_skipped(home: Path) -> None:
    run = home / "run"
    run.mkdir()
    (run / "garbage.json").write_text("{not json")
    (run / "partial.json").write_text('{"name": "x"}')

    assert PidRegistry(home).records() == []
    assert PidRegistry(home).reap_orphans() == []
