"""A vllm-mlx killed mid-run: its proxied cells say the tier behind the proxy is down.

LiteLLM answers a request for a dead backend with HTTP 500 "Connection error", which alone
reads as ``server_error``. The suite compares the failure with the same probe straight to the
tier's server; when that finds the server down, the proxied cell is ``server_down`` too, with
the direct attempt as evidence.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pytest_mlxstack.catalog import load_catalog
from pytest_mlxstack.fixture_models import fixture_catalog_path
from pytest_mlxstack.matrix.expectations import Expectations
from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.verdicts import Attribution, Route, Verdict
from pytest_mlxstack.probes import probe_concurrency, run_probe
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.run.recording import probe_record_check, probe_target
from pytest_mlxstack.run.selection import select_targets
from pytest_mlxstack.run.session import SuiteStack, start_suite_stack
from pytest_mlxstack.stack import ServerPool
from pytest_mlxstack.wiring.skips import skip_no_litellm, skip_no_openai, skip_no_vllm

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_openai]


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[SuiteStack]:
    """The suite stack on tiny-chat: its own manager, pool and LiteLLM."""
    catalog_path = fixture_catalog_path()
    targets = select_targets(load_catalog(catalog_path), ["tiny-chat"])
    with (
        ServiceManager(tmp_path / "home", grace_period=2) as manager,
        ServerPool(manager, tmp_path / "pool") as pool,
    ):
        running = start_suite_stack(
            targets,
            catalog_path,
            manager=manager,
            pool=pool,
            directory=tmp_path / "stack",
            pull=None,
        )
        try:
            yield running
        finally:
            running.close()


def test_a_killed_tier_is_server_down_through_the_proxy(suite: SuiteStack) -> None:
    target = suite.targets[0]
    assert probe_target("inference", target, suite, Route.PROXIED).verdict is Verdict.PASS
    server = psutil.Process(suite.stack.tier(target.tier).service.pid)  # started by this test

    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)

    # What LiteLLM alone makes of it: its own 500, which reads as a server error.
    raw = run_probe("inference", suite.proxy_client(), target.tier)
    assert raw.attribution is Attribution.SERVER_ERROR
    cell = probe_target("inference", target, suite, Route.PROXIED)
    assert cell.verdict is Verdict.FAIL
    assert cell.attribution is Attribution.SERVER_DOWN, cell.reason
    assert cell.reason.startswith("the tier's server behind the proxy is down: ")
    assert "connection failed" in cell.reason
    assert any("straight to the tier's server failed" in note for note in cell.evidence.notes)
    direct = probe_target("inference", target, suite, Route.DIRECT)
    assert direct.attribution is Attribution.SERVER_DOWN

    # A proxied check with no direct twin (the integration suite's concurrency check).
    outcomes: list[object] = []
    matrix = MatrixRecorder("t", [], Expectations(), outcomes.append)
    concurrency = probe_record_check(
        "concurrency",
        target,
        suite,
        Route.PROXIED,
        matrix,
        lambda: probe_concurrency(suite.proxy_client(), target.tier),
    )
    assert concurrency.attribution is Attribution.SERVER_DOWN, concurrency.reason
    assert len(outcomes) == 1  # the test was failed through the matrix, with that verdict
