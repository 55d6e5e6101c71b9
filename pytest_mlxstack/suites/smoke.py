"""The built-in smoke suite: each selected catalog model, straight to its vllm-mlx.

One test per capability declared for the route ``direct`` (``matrix.capabilities``), as the
entry's capabilities say: a capability the entry does not declare is ``n/a`` (the test skips),
never a pass. Every verdict is recorded in the matrix on the route ``direct``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("openai", reason="the built-in suites need the harness extra (openai)")

from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.verdicts import Route
from pytest_mlxstack.probes import capability_names
from pytest_mlxstack.run.burst import ProbeBurst
from pytest_mlxstack.run.recording import probe_record_check
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.run.session import SuiteStack
from pytest_mlxstack.wiring.suites import parametrize_targets

pytestmark = pytest.mark.smoke
ROUTE = Route.DIRECT


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_targets(metafunc, ROUTE)


@pytest.mark.parametrize("capability", capability_names(route=ROUTE))
def test_capability(
    capability: str,
    mlx_suite_target: SuiteTarget,
    mlx_suite_stack: SuiteStack,
    mlx_matrix: MatrixRecorder,
    mlx_probe_burst: ProbeBurst,
) -> None:
    probe_record_check(
        capability, mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix, burst=mlx_probe_burst
    )
