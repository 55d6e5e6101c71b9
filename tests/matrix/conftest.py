"""Builders for real matrices: the same objects the plugin writes, assembled in memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload, row_payload
from pytest_mlxstack.matrix.expectations import Expectations
from pytest_mlxstack.matrix.model import Matrix, RunMetadata
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict

CellSpec = tuple[str, str, str, str, str]  # model, quant, capability, route, verdict


def run_metadata(run_id: str, created_at: str, profile: str = "m2-max-64") -> RunMetadata:
    return RunMetadata(
        run_id=run_id,
        created_at=created_at,
        profile=profile,
        platform="macOS-15.1-arm64",
        system="Darwin",
        machine="arm64",
        chip="Apple M2 Max",
        memory_bytes=64 * 2**30,
        python="3.12.7",
        versions={"vllm-mlx": "0.6.0", "pytest-mlxstack": "0.1.0"},
    )


def probe_result(capability: str, verdict: str, **evidence: Any) -> ProbeResult:
    failed = verdict == "fail"
    return ProbeResult(
        capability=capability,
        verdict=Verdict(verdict),
        reason=f"{capability} {'failed' if failed else 'checked'}",
        attribution=Attribution.PARSER if failed else None,
        evidence=Evidence(**evidence),
    )


@pytest.fixture
def make_run() -> Callable[..., RunMetadata]:
    return run_metadata


@pytest.fixture
def build_matrix() -> Callable[..., Matrix]:
    """``build_matrix([(model, quant, capability, route, verdict), ...], run_id=..., ...)``."""

    def build(
        cells: list[CellSpec],
        *,
        run_id: str = "20250101T000000Z-aaaaaa",
        created_at: str = "2025-01-01T00:00:00Z",
        profile: str = "m2-max-64",
        expectations: Expectations | None = None,
        rows: list[dict[str, Any]] | None = None,
    ) -> Matrix:
        collector = MatrixCollector(expectations)
        for model, quant, capability, route, verdict in cells:
            collector.add_cell(
                cell_payload(
                    probe_result(capability, verdict),
                    model=model,
                    quant=quant,
                    route=route,
                    test_id=f"test_{model}_{capability}_{route}",
                )
            )
        for facts in rows or []:
            collector.add_row(row_payload(**facts))
        return collector.build(run_metadata(run_id, created_at, profile))

    return build
