"""A user's own ``mlx_stack`` rows name the server kind that served them: the stack file's
``kind:`` (vllm-mlx when it says nothing), with that kind's installed version; a row recorded
with ``server=`` (one tier of another kind) is a row of its own."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload, row_payload
from pytest_mlxstack.matrix.expectations import ExpectationRule, Expectations
from pytest_mlxstack.matrix.metadata import collect_run_metadata
from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route, Verdict
from pytest_mlxstack.wiring.skips import skip_no_mlx_backend, skip_no_openai

USER_TESTS = """
from pytest_mlxstack import ProbeResult, Verdict

def test_default_row(tier_client, mlx_stack, mlx_matrix):
    tier = mlx_stack.tier("fast")
    reply = tier_client("fast").chat.completions.create(
        model=tier.served_name, messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
    )
    result = ProbeResult("greeting", Verdict.PASS if reply.choices[0].message.content
                         else Verdict.FAIL)
    mlx_matrix.record(result, route="direct")  # the row of the stack's default tier
    mlx_matrix.record(ProbeResult("named", Verdict.PASS), model="tiny-chat", quant="bf16",
                      route="direct")
"""


@skip_no_mlx_backend
@skip_no_openai
@pytest.mark.skipif(importlib.util.find_spec("mlx_lm") is None, reason="mlx-lm is missing")
def test_a_stack_on_mlx_lm_records_rows_served_by_mlx_lm(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXSTACK_HOME", str(tmp_path / "home"))
    pytester.path.joinpath("stack.yaml").write_text(
        "tiers:\n  fast: {model: tiny-chat, kind: mlx-lm}\nlitellm: false\n"
    )
    pytester.makepyfile(test_mine=USER_TESTS)

    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--mlx-stack=stack.yaml",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
    )

    result.assert_outcomes(passed=1)
    (row,) = load_matrix(pytester.path / "matrices" / "latest.json").rows
    assert (row.model, row.quant, row.server) == ("tiny-chat", "bf16", "mlx-lm")
    assert row.server_version == importlib.metadata.version("mlx-lm")
    assert sorted(cell.capability for cell in row.cells) == ["greeting", "named"]


def test_a_row_that_names_its_own_server_stands_apart_and_meets_its_own_expectations() -> None:
    rule = ExpectationRule(
        model="m", quant="q", capability="tools", verdict=Verdict.FAIL, reason="r", server="mlx-lm"
    )
    expectations = Expectations([rule], server="vllm-mlx")  # as set_run_server sets it
    collector = MatrixCollector(expectations, server="vllm-mlx", server_version="0.6.0")
    failed = ProbeResult("tools", Verdict.FAIL, "no tool call")
    collector.add_cell(cell_payload(failed, model="m", quant="q", route=Route.DIRECT))
    collector.add_cell(
        cell_payload(failed, model="m", quant="q", route=Route.DIRECT, server="mlx-lm")
    )
    collector.add_row(row_payload(model="m", quant="q", server="mlx-lm", server_version="0.31"))
    collector.add_cell(  # the run's own server, named: the same row as unnamed
        cell_payload(
            ProbeResult("text", Verdict.PASS),
            model="m",
            quant="q",
            route="direct",
            server="vllm-mlx",
        )
    )

    rows = {row.server: row for row in collector.build(collect_run_metadata(profile="p")).rows}

    assert sorted(rows) == ["mlx-lm", "vllm-mlx"]
    assert (rows["mlx-lm"].server_version, rows["vllm-mlx"].server_version) == ("0.31", "0.6.0")
    assert [c.capability for c in rows["vllm-mlx"].cells] == ["text", "tools"]
    mlx_cell = rows["mlx-lm"].cell("tools", "direct")
    vllm_cell = rows["vllm-mlx"].cell("tools", "direct")
    assert mlx_cell is not None
    assert vllm_cell is not None
    assert mlx_cell.expectation is not None  # the rule names mlx-lm
    assert mlx_cell.expectation.status == "known_failure"
    assert vllm_cell.expectation is None
