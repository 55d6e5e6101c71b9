"""PortAllocator: no port held twice among the processes sharing a state directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from core_helpers import wait_for

from pytest_mlxstack.process.ports import (
    PortAllocationError,
    PortAllocator,
    PortSession,
    port_is_free,
)

HOLDER = """
import sys, time
from pytest_mlxstack.process.ports import PortAllocator
allocator = PortAllocator(sys.argv[1])
ports = [allocator.allocate() for _ in range(int(sys.argv[2]))]
print(" ".join(map(str, ports)), flush=True)
time.sleep(600)
"""


def test_one_allocator_never_hands_out_a_port_twice(tmp_path: Path) -> None:
    allocator = PortAllocator(tmp_path)
    ports = [allocator.allocate() for _ in range(50)]

    assert len(set(ports)) == 50
    assert all(port_is_free(port) for port in ports)  # reserved, not bound
    assert allocator.held == frozenset(ports)


def test_a_released_port_is_not_reused_by_the_same_allocator(tmp_path: Path) -> None:
    allocator = PortAllocator(tmp_path)
    first = allocator.allocate()
    allocator.release(first)

    later = [allocator.allocate() for _ in range(30)]

    assert first not in later
    assert first not in allocator.held


def test_allocators_sharing_a_directory_see_each_others_ports(tmp_path: Path) -> None:
    first, second = PortAllocator(tmp_path), PortAllocator(tmp_path)
    held = {first.allocate() for _ in range(20)}

    assert all(second.is_taken(port) for port in held)
    assert held.isdisjoint(second.allocate() for _ in range(20))

    for port in held:
        first.release(port)
    assert not any(second.is_taken(port) for port in held)


def test_ports_of_another_process_are_taken_until_it_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "10"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        theirs = [int(p) for p in holder.stdout.readline().split()]
        mine = PortAllocator(tmp_path)

        assert len(theirs) == 10
        assert all(mine.is_taken(port) for port in theirs)
        assert set(theirs).isdisjoint(mine.allocate() for _ in range(30))
    finally:
        holder.kill()  # no release: the kernel drops the locks of a dead process
        holder.wait()

    assert wait_for(lambda: not any(mine.is_taken(port) for port in theirs))


def test_an_unusable_state_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(PortAllocationError, match="cannot create the port state directory"):
        PortAllocator(blocker / "ports").allocate()


# Run in a network namespace of its own whose ephemeral range is one port, so the kernel
# offers that port to every allocator: like two xdist workers of one session, where gw0's test
# ended and released its port and gw1's later test is offered the same one.
ONE_PORT = """
import json, subprocess, sys
from pathlib import Path
from pytest_mlxstack.process.ports import PortAllocator, PortSession

ALLOCATE = '''
import sys
from pytest_mlxstack.process.ports import PortAllocationError, PortAllocator
try:
    print(PortAllocator(sys.argv[1], attempts=20, session=sys.argv[2]).allocate())
except PortAllocationError as exc:
    print(exc)
'''
Path("/proc/sys/net/ipv4/ip_local_port_range").write_text("41234 41234")
state = sys.argv[1]

def in_other_process(session):
    return subprocess.run([sys.executable, "-c", ALLOCATE, state, session],
                          capture_output=True, text=True, check=True).stdout.strip()

session = PortSession(state)
gw0 = PortAllocator(state, session=session.id)
first = gw0.allocate()
gw0.release(first)
later_in_session = in_other_process(session.id)
session.close()
next_session = PortSession(state)
print(json.dumps({"first": first, "later_in_session": later_in_session,
                  "next_session": in_other_process(next_session.id)}))
"""


def unshare_available() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(
    not unshare_available(),
    reason="needs Linux user and network namespaces (unshare -rn) to make the kernel offer "
    "one port only; run it on Linux with unprivileged user namespaces enabled",
)
def test_a_port_released_in_a_session_is_never_handed_out_again_in_that_session(
    tmp_path: Path,
) -> None:
    ran = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", ONE_PORT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(ran.stdout)

    assert result["first"] == 41234
    assert result["later_in_session"] == (
        f"no free loopback port after 20 attempts (state directory {tmp_path})"
    )
    assert result["next_session"] == "41234"  # a new session may use it again


SESSION_HOLDER = """
import sys, time
from pytest_mlxstack.process.ports import PortSession
print(PortSession(sys.argv[1]).id, flush=True)
time.sleep(600)
"""


def test_a_session_ledger_lives_until_its_creator_ends_it_or_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", SESSION_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        theirs = tmp_path / "sessions" / holder.stdout.readline().strip()
        PortAllocator(tmp_path, session=theirs.name).allocate()  # a worker of that session
        mine = PortSession(tmp_path)

        assert theirs.is_dir()  # its creator still runs
        assert mine.path.is_dir()
    finally:
        holder.kill()
        holder.wait()

    PortSession(tmp_path).close()
    assert not theirs.exists()  # pruned: its creator is gone
    assert mine.path.is_dir()
    mine.close()
    assert not mine.path.exists()
    with pytest.raises(PortAllocationError, match=r"port session \w+ is not open"):
        PortAllocator(tmp_path, session=mine.id).allocate()
