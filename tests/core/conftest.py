"""Fixtures for the core tests: a library ServiceManager and a foreign process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import GRACE_S, Foreign, answers, free_port, toy_argv, wait_for

from pytest_mlxstack.process.services import ServiceManager


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "mlxhome"
    path.mkdir()
    return path


@pytest.fixture
def manager(home: Path) -> Iterator[ServiceManager]:
    """A library ``ServiceManager`` (no pytest wiring) with a short grace period."""
    with ServiceManager(home, grace_period=GRACE_S) as mgr:
        yield mgr


@pytest.fixture
def foreign(tmp_path: Path) -> Iterator[Foreign]:
    """A toy server on its own port, started by plain ``subprocess`` (a foreign process)."""
    port = free_port()
    log = open(tmp_path / "foreign.log", "wb")  # noqa: SIM115 - closed below
    popen = subprocess.Popen(toy_argv(port=str(port)), stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: answers(port)), "the foreign server did not come up"
        yield Foreign(port, popen)
    finally:
        popen.kill()
        popen.wait()
        log.close()
