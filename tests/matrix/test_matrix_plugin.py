"""The plugin end to end in inner pytest runs: recording, xdist, expectations, baseline, summary."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pytest_mlxstack.matrix.model import load_matrix

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-live-Zq81mXw0aB44"

RECORDING_TESTS = f"""
import os
import pytest
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Route, Verdict

def test_inference(mlx_matrix):
    result = ProbeResult("inference", Verdict.PASS, reason="answered",
                         evidence=Evidence(response={{"content": "<script>alert(1)</script>"}}))
    mlx_matrix.record(result, model="tiny-chat", quant="bf16", route=Route.DIRECT,
                      repo="org/tiny-chat", revision="abc123")
    mlx_matrix.check(result)

def test_tools(mlx_matrix):
    result = ProbeResult(
        "tool_calling", Verdict(os.environ.get("TOOLS_VERDICT", "fail")),
        reason="<tool_call> markup left in content", attribution=Attribution.PARSER,
        evidence=Evidence(request={{"headers": {{"Authorization": "Bearer {SECRET}"}}}}),
    )
    mlx_matrix.record(result, model="tiny-chat", quant="bf16", route="proxied")
    mlx_matrix.check(result)

def test_thinking(mlx_matrix):
    result = ProbeResult("thinking", Verdict.NOT_APPLICABLE, reason="catalog entry has no thinking")
    mlx_matrix.record(result, model="tiny-chat-no-think", quant="bf16", route="direct")
    mlx_matrix.record_row(
        model="tiny-chat-no-think", quant="bf16", startup_s=4.2, server_starts=1, ttft_s=0.25
    )
    mlx_matrix.check(result)
"""


@pytest.fixture
def matrix_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = pytester.path / "matrices"
    monkeypatch.setenv("MLXSTACK_MATRIX_DIR", str(directory))
    return directory


def test_recorded_cells_become_a_matrix_and_decide_outcomes(pytester, matrix_dir):
    pytester.makepyfile(test_cells=RECORDING_TESTS)
    result = pytester.runpytest("--junitxml=report.xml")

    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*tool_calling (proxied) for tiny-chat [[]bf16[]] failed (parser): <tool_call> markup*",
            "*- mlxstack matrix -*",
            f"matrix JSON: {matrix_dir}/runs/*.json (also {matrix_dir}/latest.json)",
            f"matrix HTML: {matrix_dir}/runs/*.html (also {matrix_dir}/latest.html)",
            "cells: 1 pass, 1 fail, 0 skip, 1 n/a",
        ]
    )
    matrix = load_matrix(matrix_dir / "latest.json")
    schema = json.loads((REPO / "matrices" / "matrix.schema.json").read_text())
    jsonschema.validate(json.loads((matrix_dir / "latest.json").read_text()), schema)
    tiny, no_think = matrix.rows
    assert (tiny.model, tiny.repo, tiny.revision) == ("tiny-chat", "org/tiny-chat", "abc123")
    assert tiny.cell("tool_calling", "proxied").attribution.value == "parser"
    assert tiny.cell("tool_calling", "proxied").test_id == "test_cells.py::test_tools"
    assert (no_think.startup_s, no_think.server_starts, no_think.ttft_s) == (4.2, 1, 0.25)
    assert matrix.runs[0].versions["pytest-mlxstack"] is not None
    for written in ("latest.json", "latest.html"):
        assert SECRET not in (matrix_dir / written).read_text()
    assert SECRET not in (pytester.path / "report.xml").read_text()  # user_properties land here


def test_the_matrix_directory_option_wins_over_the_environment(pytester, matrix_dir):
    pytester.makepyfile(test_cells=RECORDING_TESTS)
    _run_with_env(pytester, {"TOOLS_VERDICT": "pass"}, "--mlx-matrix-dir=nightly")
    assert (pytester.path / "nightly" / "latest.json").is_file()
    assert not matrix_dir.exists()


def test_a_session_without_cells_writes_nothing(pytester, matrix_dir):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not matrix_dir.exists()
    assert "mlxstack matrix" not in result.stdout.str()


def test_cells_of_both_xdist_workers_land_in_one_matrix(pytester, matrix_dir):
    pytester.makepyfile(
        """
        import os
        import pytest
        from pytest_mlxstack.matrix.verdicts import Evidence, ProbeResult, Verdict

        @pytest.mark.parametrize("capability", [f"probe_{n}" for n in range(8)])
        def test_probe(mlx_matrix, capability):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            result = ProbeResult(capability, Verdict.PASS, evidence=Evidence(notes=[worker]))
            mlx_matrix.record(result, model="tiny-chat", quant="bf16", route="direct")
            mlx_matrix.record_row(model="tiny-chat", quant="bf16", server_starts=1)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["cells: 8 pass, 0 fail, 0 skip, 0 n/a"])
    assert len(list((matrix_dir / "runs").glob("*.json"))) == 1  # workers wrote nothing
    (row,) = load_matrix(matrix_dir / "latest.json").rows
    assert sorted(cell.capability for cell in row.cells) == [f"probe_{n}" for n in range(8)]
    assert {cell.evidence.notes[0] for cell in row.cells} == {"gw0", "gw1"}
    # Both workers report the run's count (the pool, and its ledger, is shared by every
    # worker): one start, not one per worker.
    assert row.server_starts == 1


def test_expectations_turn_known_failures_into_xfail_and_flag_unexpected_passes(
    pytester, matrix_dir
):
    pytester.makepyfile(test_cells=RECORDING_TESTS)
    pytester.path.joinpath("known.yaml").write_text(
        "expectations:\n"
        "  - model: tiny-chat\n"
        "    capability: tool_calling\n"
        "    verdict: fail\n"
        "    reason: hermes markup through LiteLLM\n"
        "    link: https://github.com/org/repo/issues/9\n"
    )
    known = pytester.runpytest("--mlx-expectations=known.yaml", "-rx")
    known.assert_outcomes(passed=1, xfailed=1, skipped=1)
    known.stdout.fnmatch_lines(["*known failure: hermes markup through LiteLLM*issues/9*"])
    cell = load_matrix(matrix_dir / "latest.json").rows[0].cell("tool_calling", "proxied")
    assert (cell.verdict.value, cell.expectation.status) == ("fail", "known_failure")

    pytester.makeini("[pytest]\nmlx_expectations = known.yaml\n")
    unexpected = _run_with_env(pytester, {"TOOLS_VERDICT": "pass"})
    unexpected.assert_outcomes(passed=2, skipped=1)
    unexpected.stdout.fnmatch_lines(
        [
            "*UNEXPECTED PASS tiny-chat [[]bf16[]] tool_calling (proxied): expected to fail "
            "(hermes markup through LiteLLM); update the expectations file*"
        ]
    )
    cell = load_matrix(matrix_dir / "latest.json").rows[0].cell("tool_calling", "proxied")
    assert cell.expectation.status == "unexpected_pass"
    assert "unexpected pass" in (matrix_dir / "latest.html").read_text()


def test_a_regression_against_the_previous_run_is_reported(pytester, matrix_dir):
    pytester.makepyfile(test_cells=RECORDING_TESTS)
    _run_with_env(pytester, {"TOOLS_VERDICT": "pass"}).assert_outcomes(passed=2, skipped=1)
    (first,) = (matrix_dir / "runs").glob("*.json")

    second = _run_with_env(pytester, {"TOOLS_VERDICT": "fail"})
    second.stdout.fnmatch_lines(
        [
            f"against baseline {first}: 1 regression, 0 fixes*",
            "*REGRESSION tiny-chat [[]bf16[]] tool_calling (proxied): pass -> fail (parser: *",
        ]
    )
    assert len(list((matrix_dir / "runs").glob("*.json"))) == 2
    page = (matrix_dir / "latest.html").read_text()
    assert "badge regression" in page
    # The page shows each cell's trend over the runs in runs/: pass, then fail now.
    assert '<rect class="pass" x="1"' in page
    assert '<rect class="fail now" x="7"' in page

    third = _run_with_env(
        pytester,
        {"TOOLS_VERDICT": "fail"},
        "--mlx-baseline=none",
        "--mlx-no-html",
        "--mlx-machine-profile=ci-m4-pro",
    )
    assert "against baseline" not in third.stdout.str()
    assert len(list((matrix_dir / "runs").glob("*.html"))) == 2
    latest = load_matrix(matrix_dir / "latest.json")
    assert {row.profile for row in latest.rows} == {"ci-m4-pro"}

    # An explicit baseline: the first run, where tool calling passed.
    fourth = _run_with_env(pytester, {"TOOLS_VERDICT": "fail"}, f"--mlx-baseline={first}")
    fourth.stdout.fnmatch_lines([f"against baseline {first}: 1 regression*"])


TWO_CELLS_ONE_ROUTE = """
import os
from pytest_mlxstack import ProbeResult, Route, Verdict

def test_both(mlx_matrix):
    for capability in os.environ["RECORD"].split(","):
        result = ProbeResult(capability, Verdict.PASS, reason="answered")
        mlx_matrix.record(result, model="m", quant="bf16", route=Route.DIRECT)
"""


def test_a_pass_missing_from_a_route_the_run_selected_is_a_regression(pytester, matrix_dir):
    pytester.makepyfile(test_cells=TWO_CELLS_ONE_ROUTE)
    _run_with_env(pytester, {"RECORD": "inference,streaming"}).assert_outcomes(passed=1)

    vanished = _run_with_env(pytester, {"RECORD": "inference"})

    vanished.stdout.fnmatch_lines(
        [
            "against baseline *: 1 regression, *",
            "*REGRESSION m [[]bf16[]] streaming (direct): pass -> missing*",
        ]
    )


def test_cells_the_run_did_not_select_are_not_regressions(pytester, matrix_dir):
    """A run of a subset (-k, --mlx-models, one suite) is compared on what it ran only."""
    pytester.makepyfile(test_cells=RECORDING_TESTS)
    _run_with_env(pytester, {"TOOLS_VERDICT": "pass"}).assert_outcomes(passed=2, skipped=1)

    without_tools = _run_with_env(pytester, {"TOOLS_VERDICT": "pass"}, "-k", "not tools")

    without_tools.stdout.fnmatch_lines(["against baseline *: 0 regressions, *"])
    assert "REGRESSION" not in without_tools.stdout.str()


def test_a_baseline_without_a_common_cell_is_named_not_diffed(pytester, matrix_dir):
    pytester.makepyfile(test_cells=RECORDING_TESTS)
    _run_with_env(pytester, {"TOOLS_VERDICT": "pass"}, "--mlx-machine-profile=laptop")
    (laptop,) = (matrix_dir / "runs").glob("*.json")
    other_machine = _run_with_env(pytester, {"TOOLS_VERDICT": "pass"}, "--mlx-machine-profile=ci")
    # By default a run is compared only with runs of its own machine profile: none here.
    assert "against baseline" not in other_machine.stdout.str()
    assert "share no" not in other_machine.stdout.str()

    relabelled = _run_with_env(
        pytester,
        {"TOOLS_VERDICT": "pass"},
        "--mlx-machine-profile=ci",
        f"--mlx-baseline={laptop}",
    )
    relabelled.stdout.fnmatch_lines(
        [
            f"*the baseline {laptop} (profiles: laptop) and this run's matrix "
            "(profiles: ci) share no (model, quant, profile, capability, route) cell*"
            "(--mlx-machine-profile)*"
        ]
    )
    assert "against baseline" not in relabelled.stdout.str()


def test_a_failure_expected_with_another_attribution_fails_with_one_sentence(pytester, matrix_dir):
    pytester.makepyfile(test_cells=RECORDING_TESTS)  # tool_calling fails as the parser's fault
    pytester.path.joinpath("known.yaml").write_text(
        "- {model: tiny-chat, capability: tool_calling, verdict: fail, attribution: model,\n"
        "   reason: never calls tools}\n"
    )
    result = pytester.runpytest("--mlx-expectations=known.yaml")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*tool_calling (proxied) for tiny-chat [[]bf16[]] was expected to fail as model "
            "(never calls tools) but failed as parser: <tool_call> markup left in content"
        ]
    )
    cell = load_matrix(matrix_dir / "latest.json").rows[0].cell("tool_calling", "proxied")
    assert (cell.expectation.status, cell.expectation.attribution.value) == ("mismatch", "model")


def test_known_secret_values_given_to_record_never_reach_a_file(pytester, matrix_dir):
    pytester.makepyfile(
        """
        from pytest_mlxstack.matrix.verdicts import Evidence, ProbeResult, Verdict

        def test_secret(mlx_matrix):
            result = ProbeResult("errors", Verdict.FAIL, reason="rejected plainmaster77",
                                 evidence=Evidence(notes=["key was plainmaster77"]))
            mlx_matrix.record(result, model="m", quant="q", route="proxied",
                              secrets=["plainmaster77"])
        """
    )
    pytester.runpytest("--junitxml=report.xml").assert_outcomes(passed=1)
    for written in (matrix_dir / "latest.json", matrix_dir / "latest.html"):
        assert "plainmaster77" not in written.read_text()
    assert "plainmaster77" not in (pytester.path / "report.xml").read_text()
    assert "rejected [REDACTED]" in (matrix_dir / "latest.json").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mlx-expectations=absent.yaml"], "*expectations file *absent.yaml does not exist*"),
        (["--mlx-expectations=bad.yaml"], "*bad.yaml: entry 1: verdict 'flaky' is not one of*"),
        (["--mlx-baseline=old.json"], "*--mlx-baseline / mlx_baseline: *old.json is not a matrix*"),
        (["--mlx-baseline=bad.yaml"], "*--mlx-baseline / mlx_baseline: *bad.yaml: not valid JSON*"),
    ],
)
def test_bad_options_are_one_sentence_not_a_traceback(pytester, matrix_dir, args, message):
    pytester.path.joinpath("bad.yaml").write_text(
        "- {model: m, capability: c, verdict: flaky, reason: r}\n"
    )
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_an_unwritable_matrix_directory_fails_the_session_loudly(pytester, monkeypatch):
    # A matrix directory that is itself a file is refused at start-up (core wiring); one whose
    # runs/ is a file passes that check and only fails when the matrix is written.
    directory = pytester.path / "matrices"
    directory.mkdir()
    blocker = directory / "runs"
    blocker.write_text("a file where the runs directory should be")
    monkeypatch.setenv("MLXSTACK_MATRIX_DIR", str(directory))
    pytester.makepyfile(test_cells=RECORDING_TESTS)
    result = _run_with_env(pytester, {"TOOLS_VERDICT": "pass"})
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines([f"*could not write the matrix to {directory} (*"])
    assert blocker.read_text() == "a file where the runs directory should be"
    assert not (directory / "latest.json").exists()


def _run_with_env(pytester: pytest.Pytester, env: dict[str, str], *args: str):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return pytester.runpytest(*args)
