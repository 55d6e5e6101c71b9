"""The built-in integration suite: the selected models as tiers of one stack behind LiteLLM.

Routing by tier name and concurrent requests are recorded per model (route ``proxied``);
model listing, the master key and a clean shutdown are properties of the stack and plain
assertions. With a single selected model the stack gets a second tier name on the same server,
so there are still two names to route.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("openai", reason="the built-in suites need the harness extra")

import httpx
import psutil

from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route, Verdict
from pytest_mlxstack.probes import probe_concurrency, probe_inference, probe_routing
from pytest_mlxstack.process.cache import ModelCache
from pytest_mlxstack.process.ports import port_is_free
from pytest_mlxstack.run.recording import probe_record_check
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.run.session import SuiteStack
from pytest_mlxstack.stack import ServerPool, StackSpec, start_stack
from pytest_mlxstack.stack.clients import proxy_client
from pytest_mlxstack.wiring.core import new_service_manager
from pytest_mlxstack.wiring.suites import parametrize_targets

pytestmark = pytest.mark.integration
ROUTE = Route.PROXIED
GREETING = [{"role": "user", "content": "Say hello."}]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_targets(metafunc, ROUTE)


def test_routing_by_tier_name(
    mlx_suite_target: SuiteTarget, mlx_suite_stack: SuiteStack, mlx_matrix: MatrixRecorder
) -> None:
    def probe() -> ProbeResult:
        return probe_routing(
            mlx_suite_stack.proxy_client(),
            mlx_suite_target.tier,
            direct=mlx_suite_stack.direct_client(mlx_suite_target),
            served_name=mlx_suite_stack.served_name(mlx_suite_target),
        )

    probe_record_check("routing", mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix, probe)


def test_concurrent_requests(
    mlx_suite_target: SuiteTarget, mlx_suite_stack: SuiteStack, mlx_matrix: MatrixRecorder
) -> None:
    def probe() -> ProbeResult:
        return probe_concurrency(mlx_suite_stack.proxy_client(), mlx_suite_target.tier)

    probe_record_check("concurrency", mlx_suite_target, mlx_suite_stack, ROUTE, mlx_matrix, probe)


def test_model_listing_names_every_tier(mlx_suite_stack: SuiteStack) -> None:
    listed = {model.id for model in mlx_suite_stack.proxy_client().models.list()}
    assert len(mlx_suite_stack.tier_names) >= 2
    missing = sorted(set(mlx_suite_stack.tier_names) - listed)
    assert not missing, f"LiteLLM does not list the tiers {missing} (it lists {sorted(listed)})"


def test_master_key_is_enforced(mlx_suite_stack: SuiteStack) -> None:
    """Without the key LiteLLM answers 401; with a wrong one, and no database to look keys up
    in, 400 ("No connected db."). Either way no answer comes back.
    """
    stack = mlx_suite_stack.stack
    url = f"{stack.proxy_url}/chat/completions"
    body = {"model": mlx_suite_stack.tier_names[0], "messages": GREETING, "max_tokens": 16}
    keys = {"no key": ({}, 401), "wrong key": ({"Authorization": "Bearer sk-not-the-key"}, 400)}
    for what, (headers, status) in keys.items():
        refused = httpx.post(url, json=body, headers=headers, timeout=60)
        assert refused.status_code == status, f"a request with {what}: {refused.text[:300]}"
        assert "choices" not in refused.text, f"a request with {what} got an answer"
    accepted = httpx.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {stack.master_key.reveal()}"},
        timeout=60,
    )
    assert accepted.status_code == 200, accepted.text[:300]


def test_clean_shutdown(
    pytestconfig: pytest.Config,
    tmp_path: Path,
    mlx_suite_stack: SuiteStack,
    mlx_server_pool: ServerPool,
    model_cache: ModelCache,
) -> None:
    """A second stack over the same pooled tiers answers, then stops its LiteLLM (process
    tree gone, port free) and leaves the shared vllm-mlx servers running."""
    spec = StackSpec(
        tiers=mlx_suite_stack.stack.spec.tiers[:2], catalog=mlx_suite_stack.stack.spec.catalog
    )
    with new_service_manager(pytestconfig) as manager:
        stack = start_stack(
            spec, manager=manager, directory=tmp_path, pool=mlx_server_pool, pull=model_cache.pull
        )
        assert stack.proxy is not None
        proxy = psutil.Process(stack.proxy.pid)
        tree = [proxy, *proxy.children(recursive=True)]
        with proxy_client(stack) as client:
            answer = probe_inference(client, spec.tiers[0].name)
        assert answer.verdict is Verdict.PASS, answer.reason
        stack.down()
        _, alive = psutil.wait_procs(tree, timeout=15)
        assert not alive, f"processes left after down(): {[p.pid for p in alive]}"
        assert port_is_free(stack.proxy.port), f"port {stack.proxy.port} still in use"
    for name, server in stack.tiers.items():
        health = httpx.get(f"{server.service.url}/health", timeout=10)
        assert health.status_code == 200, f"the pooled server of {name} stopped with the stack"
