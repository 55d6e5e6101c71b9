"""The smoke and harness probes run a few at a time ahead of their tests (``run/burst.py``):
the verdicts stay those of one-by-one probing, and ``-k`` still decides which probes run.

Inner pytest runs on tiny-chat with the real stack; what reached the model is counted in its
vllm-mlx access log.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.wiring.skips import (
    skip_no_litellm,
    skip_no_mlx_backend,
    skip_no_openai,
    skip_no_vllm,
)

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_mlx_backend, skip_no_openai]
CHAT_POSTS = re.compile(r'"POST /v1/chat/completions HTTP/1\.1"')


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mlxhome"
    monkeypatch.setenv("MLXSTACK_HOME", str(path))
    monkeypatch.delenv("MLXSTACK_MATRIX_DIR", raising=False)
    return path


def chat_posts(home: Path) -> int:
    """Chat requests tiny-chat's vllm-mlx answered in the run (its logs stay in the home)."""
    logs = list((home / "logs").glob("pool-tiny-chat-*.log"))
    assert len(logs) == 1, logs
    return len(CHAT_POSTS.findall(logs[0].read_text(encoding="utf-8", errors="replace")))


def test_only_the_selected_tests_probes_run_and_their_cells_are_recorded(
    pytester: pytest.Pytester, home: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
        "--mlx-suites=smoke",
        "--mlx-models=tiny-chat",
        "--mlx-probe-concurrency=4",
        "-k",
        "system_prompt or multi_turn",
    )

    result.assert_outcomes(passed=2)
    (row,) = load_matrix(pytester.path / "matrices" / "latest.json").rows
    assert {cell.key: cell.verdict.value for cell in row.cells} == {
        ("system_prompt", "direct"): "pass",
        ("multi_turn", "direct"): "pass",
    }
    assert (row.decode_tokens_per_s or 0) > 0  # measured before the burst, alone
    # the two probes and the speed measurement (5 requests here); the twelve other
    # capabilities of the smoke suite, each at least one request, would make it 17 or more
    assert chat_posts(home) < 10
    assert PidRegistry(home).records() == []


def test_a_burst_gives_the_verdicts_of_one_by_one_probing(
    pytester: pytest.Pytester, home: Path
) -> None:
    verdicts = []
    for width in ("1", "4"):
        matrices = pytester.path / f"matrices-{width}"
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            f"--mlx-matrix-dir={matrices}",
            "--mlx-suites=smoke",
            "--mlx-models=tiny-chat",
            "--mlx-expectations=none",
            f"--mlx-probe-concurrency={width}",
        )
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        (row,) = load_matrix(matrices / "latest.json").rows
        verdicts.append({cell.key: (cell.verdict.value, cell.attribution) for cell in row.cells})
    one_by_one, burst = verdicts
    assert burst == one_by_one
    assert len(burst) > 10
