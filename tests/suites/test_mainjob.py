"""The main job's summary and its refusals, without starting a stack (the honesty tests run
it for real)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_mlxstack.mainjob import summary_lines
from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload, row_payload
from pytest_mlxstack.matrix.expectations import parse_expectations
from pytest_mlxstack.matrix.metadata import collect_run_metadata
from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Verdict


def result(
    capability: str, verdict: Verdict, attribution: Attribution | None = None
) -> ProbeResult:
    return ProbeResult(capability, verdict, "why " + capability, attribution)


def test_the_summary_is_a_grid_with_blame_and_known_failures(tmp_path: Path) -> None:
    expectations = parse_expectations(
        [{"model": "broken", "capability": "tool_calling", "verdict": "fail", "reason": "known"}]
    )
    collector = MatrixCollector(expectations)
    cells = [
        ("good", "inference", "direct", result("inference", Verdict.PASS)),
        ("good", "inference", "proxied", result("inference", Verdict.PASS)),
        ("good", "thinking", "direct", result("thinking", Verdict.NOT_APPLICABLE)),
        (
            "broken",
            "tool_calling",
            "direct",
            result("tool_calling", Verdict.FAIL, Attribution.PARSER),
        ),
        ("broken", "errors", "proxied", result("errors", Verdict.FAIL, Attribution.PROXY)),
    ]
    for model, _, route, probe in cells:
        collector.add_cell(cell_payload(probe, model=model, quant="bf16", route=route))
    for model in ("good", "broken"):
        collector.add_row(row_payload(model=model, quant="bf16", server_starts=1))
    matrix = collector.build(collect_run_metadata(profile="test"))

    lines = summary_lines(matrix, tmp_path / "m.json")
    text = "\n".join(lines)
    grid = {line.split()[0]: line.split()[1:] for line in lines[1 : lines.index("")]}
    header = lines[0]
    assert header.index("broken [bf16]") < header.index("good [bf16]")  # rows in matrix order
    assert grid["inference"] == ["-", "-", "ok", "ok"]
    assert grid["tool_calling"] == ["PARSER*", "-", "-", "-"]
    assert grid["errors"] == ["-", "PROXY", "-", "-"]
    assert grid["thinking"] == ["-", "-", "n/a", "-"]
    assert "server starts per model: broken [bf16]: 1, good [bf16]: 1" in text
    assert "unexpected failures:\n  broken [bf16] errors (proxied): proxy: why errors" in text
    assert "tool_calling (direct)" not in text.split("unexpected failures:")[1]
    assert lines[-1] == f"matrix: {tmp_path / 'm.json'}"


def test_a_missing_catalog_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_mlxstack.mainjob", "--catalog", "nowhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mainjob: the catalog {tmp_path / 'nowhere'} does not exist; pass --catalog PATH"
    ]
    assert not (tmp_path / "matrices").exists()
