"""The built-in smoke suite: each selected catalog model, straight to its vllm-mlx.

Inference, streaming, tool calling (plain and streamed) and thinking, as the entry's
capabilities say: a capability the entry does not declare is ``n/a`` (the test skips), never a
pass. Every verdict is recorded in the matrix on the route ``direct``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("openai", reason="the built-in suites need the harness extra (openai)")

from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.verdicts import Route
from pytest_mlxstack.run.recording import probe_record_check
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.run.session import SuiteStack
from pytest_mlxstack.wiring.suites import parametrize_targets

pytestmark = pytest.mark.smoke
ROUTE = Route.DIRECT


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_targets(metafunc, ROUTE)


def test_inference(
    mlx_suite_target: SuiteTarget, mlx_suite_stack: SuiteStack, mlx_matrix: MatrixRecorder
) -> None:
    probe_record_check("inference", mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix)


def test_streaming(
    mlx_suite_target: SuiteTarget, mlx_suite_stack: SuiteStack, mlx_matrix: MatrixRecorder
) -> None:
    probe_record_check("streaming", mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix)


def test_tool_calling(
    mlx_suite_target: SuiteTarget, mlx_suite_stack: SuiteStack, mlx_matrix: MatrixRecorder
) -> None:
    probe_record_check("tool_calling", mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix)


def test_tool_calling_streaming(
    mlx_suite_target: SuiteTarget, mlx_suite_stack: SuiteStack, mlx_matrix: MatrixRecorder
) -> None:
    probe_record_check(
        "tool_calling_streaming", mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix
    )


def test_thinking(
    mlx_suite_target: SuiteTarget, mlx_suite_stack: SuiteStack, mlx_matrix: MatrixRecorder
) -> None:
    probe_record_check("thinking", mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix)
