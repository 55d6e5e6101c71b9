"""The built-in integration suite: the selected models as tiers of one stack behind LiteLLM.

Routing by tier name and concurrent requests are recorded per model (route ``proxied``);
model listing, the master key and a clean shutdown are properties of the stack and plain
assertions. With a single selected model the stack gets a second tier name on the same server,
so there are still two names to route.

The clean-shutdown check runs after every other built-in test (outside xdist) and then stops
the suite stack's own LiteLLM: no second LiteLLM to boot. When a later test still needs the
suite stack (xdist workers keep the collection order; a test of yours using it), it needs a
second stack (its own LiteLLM over the pooled servers, which it reuses): that one starts in
the background when the module's first test runs, so LiteLLM's boot overlaps the other checks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("openai", reason="the built-in suites need the harness extra")

import httpx
import psutil

from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route, Verdict
from pytest_mlxstack.probes import probe_concurrency, probe_inference, probe_routing
from pytest_mlxstack.process.cache import ModelCache
from pytest_mlxstack.process.ports import port_is_free
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.process.together import Outcome, StartGroup
from pytest_mlxstack.run.recording import probe_record_check
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.run.session import SuiteStack
from pytest_mlxstack.stack import ServerPool, Stack, StackSpec, start_stack
from pytest_mlxstack.stack.clients import proxy_client
from pytest_mlxstack.wiring.core import new_service_manager
from pytest_mlxstack.wiring.suites import parametrize_targets

pytestmark = pytest.mark.integration
ROUTE = Route.PROXIED
GREETING = [{"role": "user", "content": "Say hello."}]
SHUTDOWN_TEST = "test_clean_shutdown"


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


@pytest.fixture(scope="module", autouse=True)
def shutdown_stack(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    mlx_suite_stack: SuiteStack,
    mlx_server_pool: ServerPool,
    model_cache: ModelCache,
) -> Iterator[tuple[ServiceManager, Outcome[Stack]] | None]:
    """The clean-shutdown check's stack, starting in the background from the module's first
    test on (nothing when that check is not selected); stopped, or its start called off and
    waited for, when the module ends."""
    if _shutdown_in_place(request.session.items) is not False:
        yield None  # not selected, or the suite stack itself will be shut down
        return
    running = mlx_suite_stack.stack  # its spec names the tiers that are down too
    up = [tier for tier in running.spec.tiers if tier.name in running.tiers]
    spec = StackSpec(tiers=tuple(up[:2]), catalog=running.spec.catalog)
    cancel = threading.Event()
    with new_service_manager(pytestconfig) as manager, StartGroup(cancel=cancel) as group:
        outcome = group.submit(
            lambda: start_stack(
                spec,
                manager=manager,
                directory=tmp_path_factory.mktemp("mlx-shutdown-stack"),
                pool=mlx_server_pool,
                pull=model_cache.pull,
                cancel=cancel,
            )
        )
        try:
            yield manager, outcome
        finally:
            cancel.set()  # a start still under way is called off; a running stack is stopped
            group.wait()
            if outcome.error is None:
                outcome.result().down()


def _shutdown_in_place(items: list[pytest.Item]) -> bool | None:
    """Whether the clean-shutdown check may stop the suite stack itself (no later test uses
    it); None when the check is not selected."""
    found = [i for i, item in enumerate(items) if item.name == SHUTDOWN_TEST]
    if not found:
        return None
    later = items[found[-1] + 1 :]
    return not any("mlx_suite_stack" in getattr(item, "fixturenames", ()) for item in later)


def test_clean_shutdown(
    shutdown_stack: tuple[ServiceManager, Outcome[Stack]] | None,
    mlx_suite_stack: SuiteStack,
) -> None:
    """A stack over the pooled tiers (the suite stack itself when no later test needs it, else
    a second one) answers, then stops its LiteLLM (process tree gone, port free) and leaves
    the shared vllm-mlx servers running."""
    if shutdown_stack is None:
        stack = mlx_suite_stack.stack
    else:
        _, starting = shutdown_stack
        starting.done.wait()
        stack = starting.result()
    assert stack.proxy is not None
    proxy = psutil.Process(stack.proxy.pid)
    tree = [proxy, *proxy.children(recursive=True)]
    with proxy_client(stack) as client:
        answer = probe_inference(client, next(iter(stack.tiers)))
    assert answer.verdict is Verdict.PASS, answer.reason
    stack.down()
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert not alive, f"processes left after down(): {[p.pid for p in alive]}"
    assert port_is_free(stack.proxy.port), f"port {stack.proxy.port} still in use"
    for name, server in stack.tiers.items():
        health = httpx.get(f"{server.service.url}/health", timeout=10)
        assert health.status_code == 200, f"the pooled server of {name} stopped with the stack"
