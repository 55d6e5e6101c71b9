"""The built-in harness suite: what a coding agent does with the OpenAI Python client,
through LiteLLM, for each selected catalog model (by its tier name).

One test per capability declared for the route ``proxied`` (``matrix.capabilities``), and
model listing. Every verdict is recorded in the matrix on the
route ``proxied``; a failure that does not happen straight to vllm-mlx is the proxy's.
"""

from __future__ import annotations

import pytest

pytest.importorskip("openai", reason="the built-in suites need the harness extra (openai)")

from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route
from pytest_mlxstack.probes import capability_names, probe_model_listing
from pytest_mlxstack.run.burst import ProbeBurst
from pytest_mlxstack.run.recording import probe_record_check, proxy_client_of
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.run.session import SuiteStack
from pytest_mlxstack.wiring.suites import parametrize_targets

pytestmark = pytest.mark.harness
ROUTE = Route.PROXIED


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_targets(metafunc, ROUTE)


@pytest.mark.parametrize("capability", capability_names(route=ROUTE))
def test_openai_client(
    capability: str,
    mlx_suite_target: SuiteTarget,
    mlx_suite_stack: SuiteStack,
    mlx_matrix: MatrixRecorder,
    mlx_probe_burst: ProbeBurst,
) -> None:
    probe_record_check(
        capability, mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix, burst=mlx_probe_burst
    )


def test_model_listing(
    mlx_suite_target: SuiteTarget,
    mlx_suite_stack: SuiteStack,
    mlx_matrix: MatrixRecorder,
    mlx_probe_burst: ProbeBurst,
) -> None:
    def probe() -> ProbeResult:
        client = proxy_client_of(mlx_suite_stack, mlx_suite_target)
        return probe_model_listing(client, mlx_suite_target.tier, route=ROUTE)

    probe_record_check(
        "model_listing",
        mlx_suite_target,
        mlx_suite_stack,
        ROUTE,
        mlx_matrix,
        probe,
        burst=mlx_probe_burst,
    )
