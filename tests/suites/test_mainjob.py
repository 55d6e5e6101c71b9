"""The main job's summary and its refusals, without starting a stack (the honesty tests run
it for real)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pytest_mlxstack.mainjob import chosen_baseline, summary_lines
from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload, row_payload
from pytest_mlxstack.matrix.expectations import parse_expectations
from pytest_mlxstack.matrix.metadata import collect_run_metadata
from pytest_mlxstack.matrix.model import Matrix, load_matrix
from pytest_mlxstack.matrix.store import write_matrix, write_matrix_file
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
    assert "server starts per model: broken [bf16] @vllm-mlx: 1, good [bf16] @vllm-mlx: 1" in text
    assert (
        "unexpected failures:\n  broken [bf16] @vllm-mlx errors (proxied): proxy: why errors"
        in text
    )
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


def one_model_matrix(
    model: str, verdicts: dict[str, Verdict], profile: str = "test", now: datetime | None = None
) -> Matrix:
    """A matrix of ``model [bf16]``: each capability straight to its server (direct)."""
    collector = MatrixCollector()
    for capability, verdict in verdicts.items():
        blame = Attribution.MODEL if verdict is Verdict.FAIL else None
        probe = result(capability, verdict, blame)
        collector.add_cell(cell_payload(probe, model=model, quant="bf16", route="direct"))
    collector.add_row(row_payload(model=model, quant="bf16", server_starts=1))
    return collector.build(collect_run_metadata(profile=profile, now=now))


def test_the_summary_lists_the_regressions_against_the_baseline(tmp_path: Path) -> None:
    before = {"inference": Verdict.PASS, "tool_calling": Verdict.PASS, "thinking": Verdict.FAIL}
    now = {"inference": Verdict.PASS, "tool_calling": Verdict.FAIL, "thinking": Verdict.PASS}
    base = tmp_path / "base.json"

    lines = summary_lines(
        one_model_matrix("m", now), tmp_path / "m.json", (base, one_model_matrix("m", before))
    )

    start = lines.index(
        f"against {base}: 1 regression, 1 fix, 0 changed, 0 new, 0 removed, 1 unchanged"
    )
    assert lines[start + 1] == (
        "  REGRESSION m [bf16] tool_calling (direct): pass -> fail (model: why tool_calling)"
    )
    assert lines[start + 2] == "unexpected failures:"


def test_a_baseline_of_another_machine_is_not_compared(tmp_path: Path) -> None:
    verdicts = {"inference": Verdict.PASS}
    base = (tmp_path / "base.json", one_model_matrix("m", verdicts, profile="ci-macos-14"))

    lines = summary_lines(one_model_matrix("m", verdicts), tmp_path / "m.json", base)

    assert not [line for line in lines if line.startswith("against")]
    [refused] = [line for line in lines if line.startswith("not compared")]
    assert f"{base[0]} (profiles: ci-macos-14)" in refused
    assert "--mlx-machine-profile" in refused


def test_the_baseline_is_the_newest_earlier_run_of_the_same_machine(tmp_path: Path) -> None:
    """The main job names the matrix the plugin compared with (``previous_matrix``): the
    newest earlier run of this machine profile; another machine's runs are passed over."""
    matrix_dir = tmp_path / "matrices"
    verdicts = {"inference": Verdict.PASS}
    day = datetime(2026, 12, 1, tzinfo=timezone.utc)
    older = one_model_matrix("m", verdicts, now=day)
    other_machine = one_model_matrix("m", verdicts, "ci-macos-14", now=day + timedelta(hours=1))
    this_run = one_model_matrix("m", verdicts, now=day + timedelta(hours=2))
    assert chosen_baseline(matrix_dir, this_run, None) is None  # the first run
    write_matrix(older, matrix_dir)
    write_matrix(other_machine, matrix_dir)
    write_matrix(this_run, matrix_dir)

    chosen = chosen_baseline(matrix_dir, this_run, None)

    assert chosen is not None
    assert chosen[1].runs[-1].run_id == older.runs[-1].run_id
    assert chosen_baseline(matrix_dir, this_run, "none") is None
    explicit = matrix_dir / "runs" / f"{other_machine.runs[-1].run_id}.json"
    assert chosen_baseline(matrix_dir, this_run, str(explicit)) is not None


def test_the_main_job_names_a_regression_of_the_fixture_run(tmp_path: Path) -> None:
    """The real main job on one negative control (one vllm-mlx, ~10 s): its tool calling
    fails, so a baseline where it passed makes a regression in the end summary."""
    pytest.importorskip("vllm_mlx", reason="the main job runs the real stack (stack extra)")
    pytest.importorskip("litellm", reason="the main job runs the real stack (stack extra)")
    baseline = tmp_path / "baseline.json"
    passed = {"inference": Verdict.PASS, "tool_calling": Verdict.PASS}
    write_matrix_file(one_model_matrix("tiny-chat-no-tools", passed), baseline)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLXSTACK_"))}
    env["MLXSTACK_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_mlxstack.mainjob",
            "--matrix-dir",
            str(tmp_path / "matrices"),
            f"--baseline={baseline}",
            "--kinds=vllm-mlx",
            "--",
            "--mlx-models=tiny-chat-no-tools",
            "-m",
            "smoke",
            "--mlx-machine-profile=test",
            f"--basetemp={tmp_path / 'basetemp'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = done.stdout.split("===== mainjob: matrix of", 1)[-1]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"against {baseline}: 1 regression, " in summary, summary
    regressions = [line for line in summary.splitlines() if "REGRESSION" in line]
    assert len(regressions) == 1, summary
    assert regressions[0].startswith(
        "  REGRESSION tiny-chat-no-tools [bf16] tool_calling (direct): pass -> fail (model: "
    ), summary


def test_an_unknown_server_kind_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_mlxstack.mainjob", "--kinds", "vllm-mlx,ollama"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "argument --kinds: 'ollama' is not a server kind; use a comma-separated list of "
            "vllm-mlx, mlx-lm, llama.cpp"
        )
    )
    assert not (tmp_path / "matrices").exists()


def test_the_main_job_puts_two_servers_side_by_side(tmp_path: Path) -> None:
    """The real main job on tiny-chat with vllm-mlx and mlx_lm.server: one merged matrix
    whose rows differ by server, each kind's own matrix kept beside it, and the servers' real
    differences as cells (vllm-mlx ignores ``stop``; mlx_lm.server honours it)."""
    pytest.importorskip("vllm_mlx", reason="the main job runs the real stack (stack extra)")
    pytest.importorskip("mlx_lm", reason="the main job runs the real stack (stack extra)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLXSTACK_"))}
    env["MLXSTACK_HOME"] = str(tmp_path / "home")
    matrix_dir = tmp_path / "matrices"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_mlxstack.mainjob",
            "--matrix-dir",
            str(matrix_dir),
            "--kinds=vllm-mlx,mlx-lm",
            "--",
            "--mlx-models=tiny-chat",
            "-m",
            "smoke",
            "-k",
            "stop",
            "--mlx-machine-profile=test",
            f"--basetemp={tmp_path / 'basetemp'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    merged = load_matrix(matrix_dir / "latest.json")
    rows = {row.server: row for row in merged.rows}
    assert set(rows) == {"vllm-mlx", "mlx-lm"}
    assert {row.model for row in merged.rows} == {"tiny-chat"}
    for server, row in rows.items():
        assert row.server_version, server
        assert load_matrix(matrix_dir / "servers" / server / "latest.json").rows[0].server == server
    on_vllm, on_mlx_lm = (
        rows["vllm-mlx"].cell("stop", "direct"),
        rows["mlx-lm"].cell("stop", "direct"),
    )
    assert on_vllm is not None
    assert on_mlx_lm is not None
    assert (on_vllm.verdict.value, on_vllm.attribution and on_vllm.attribution.value) == (
        "fail",
        "server_error",
    )
    assert on_vllm.expectation is not None
    assert on_vllm.expectation.status == "known_failure"
    assert on_mlx_lm.verdict.value == "pass", on_mlx_lm.reason
    summary = done.stdout.split("===== mainjob: matrix of 2 server kind(s)", 1)[-1]
    assert f"server: vllm-mlx {rows['vllm-mlx'].server_version}" in summary
    assert f"server: mlx-lm {rows['mlx-lm'].server_version}" in summary
    page = (matrix_dir / "latest.html").read_text(encoding="utf-8")
    assert "mlx-lm" in page
    assert "vllm-mlx" in page
