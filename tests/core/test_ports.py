"""PortAllocator: no port held twice among the processes sharing a state directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from core_helpers import wait_for

from pytest_mlxstack.ports import PortAllocationError, PortAllocator, port_is_free

HOLDER = """
import sys, time
from pytest_mlxstack.ports import PortAllocator
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
