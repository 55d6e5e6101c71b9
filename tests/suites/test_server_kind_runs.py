"""The built-in suites on another managed server: ``--mlx-server-kind mlx-lm`` serves the
fixture model with mlx_lm.server, and the matrix shows that server's own differences (it
honours stop and counts usage consistently, where vllm-mlx 0.6.0 does not; it ignores
tool_choice, where vllm-mlx honours 'none'), each a cell attributed to the server."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.wiring.skips import skip_no_litellm, skip_no_mlx_backend, skip_no_openai

pytestmark = [
    skip_no_litellm,
    skip_no_mlx_backend,
    skip_no_openai,
    pytest.mark.skipif(importlib.util.find_spec("mlx_lm") is None, reason="mlx-lm is missing"),
]


def test_the_smoke_suite_on_mlx_lm_shows_its_own_differences(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXSTACK_HOME", str(tmp_path / "mlxhome"))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
        "--mlx-suites=smoke",
        "--mlx-models=tiny-chat",
        "--mlx-server-kind=mlx-lm",
    )

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["tiny-chat:bf16 as tiny-chat: 1 start(s) in mlx-lm *"])
    (row,) = load_matrix(pytester.path / "matrices" / "latest.json").rows
    assert row.server == "mlx-lm"
    assert row.server_version == importlib.metadata.version("mlx-lm")
    cells = {cell.capability: cell for cell in row.cells}
    assert cells["stop"].verdict.value == "pass"  # vllm-mlx 0.6.0 fails it
    assert cells["usage"].verdict.value == "pass"  # vllm-mlx 0.6.0 fails it
    assert cells["thinking"].verdict.value == "pass"  # read from the 'reasoning' field
    ignored = cells["tool_choice_none"]
    assert ignored.verdict.value == "fail"
    assert ignored.attribution is not None
    assert ignored.attribution.value == "server_error"
    assert "get_weather" in ignored.reason  # the evidence: the call it should not have made
    assert ignored.expectation is not None
    assert ignored.expectation.status == "known_failure"
