"""The extension hooks, each exercised by a real plugin in an inner pytest run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ONE_CELL = """
from pytest_mlxstack import ProbeResult, Route, Verdict

def test_cell(mlx_matrix):
    result = ProbeResult("inference", Verdict.PASS, reason="answered")
    mlx_matrix.record(result, model="tiny-chat", quant="bf16", route=Route.DIRECT)
    mlx_matrix.check(result)
"""


@pytest.fixture
def matrix_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = pytester.path / "matrices"
    monkeypatch.setenv("MLXSTACK_MATRIX_DIR", str(directory))
    return directory


def test_provenance_fields_from_two_plugins_reach_the_matrix_redacted(
    pytester: pytest.Pytester, matrix_dir: Path
) -> None:
    pytester.makeconftest(
        """
        def pytest_mlxstack_provenance(config):
            return {"ci_job": "https://ci.example/jobs/42", "token": "hf_" + "a" * 34}
        """
    )
    pytester.makepyfile(
        other_plugin="""
        def pytest_mlxstack_provenance(config):
            return {"commit": "0123abc"}
        """
    )
    pytester.makepyfile(test_cell=ONE_CELL)

    pytester.syspathinsert()
    result = pytester.runpytest("-p", "other_plugin")

    result.assert_outcomes(passed=1)
    written = json.loads((matrix_dir / "latest.json").read_text())
    provenance = written["runs"][0]["provenance"]
    assert provenance["commit"] == "0123abc"
    assert provenance["ci_job"] == "https://ci.example/jobs/42"
    assert "a" * 34 not in json.dumps(written), "a secret-shaped value must be redacted"


def test_a_written_matrix_is_handed_to_the_hook_with_its_paths(
    pytester: pytest.Pytester, matrix_dir: Path
) -> None:
    pytester.makeconftest(
        """
        import json, pathlib

        def pytest_mlxstack_matrix_written(config, matrix, written):
            pathlib.Path("uploaded.json").write_text(json.dumps({
                "json": str(written.json_path),
                "html": str(written.html_path),
                "cells": sum(len(row.cells) for row in matrix.rows),
            }))
        """
    )
    pytester.makepyfile(test_cell=ONE_CELL)

    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    uploaded = json.loads((pytester.path / "uploaded.json").read_text())
    assert Path(uploaded["json"]).is_file()
    assert Path(uploaded["html"]).is_file()
    assert uploaded["cells"] == 1


def test_a_failing_upload_hook_keeps_the_matrix_and_fails_the_run_in_one_line(
    pytester: pytest.Pytester, matrix_dir: Path
) -> None:
    pytester.makeconftest(
        """
        def pytest_mlxstack_matrix_written(config, matrix, written):
            raise ConnectionError("upload server unreachable")
        """
    )
    pytester.makepyfile(test_cell=ONE_CELL)

    result = pytester.runpytest()

    assert result.ret != pytest.ExitCode.OK
    assert (matrix_dir / "latest.json").is_file()
    result.stdout.fnmatch_lines(
        ["*a pytest_mlxstack_matrix_written hook failed (ConnectionError: upload server*"]
    )
