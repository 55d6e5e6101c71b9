"""Pytest wiring for stacks: the ``--mlx-stack`` option, the server pool, the stack fixtures.

Kept thin: the logic lives in ``pytest_mlxstack.stack``. One vllm-mlx per (model, flags) runs
for the whole run: xdist workers share the controller's pool directory (sent to them in
``workerinput``), whose ledger lets a worker reuse a server another worker started.
"""

from __future__ import annotations

import functools
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlxstack.process.cache import ModelCache
from pytest_mlxstack.process.leftovers import POOLS_DIR, claim
from pytest_mlxstack.process.registry import Owner
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.stack.clients import proxy_client
from pytest_mlxstack.stack.clients import tier_client as direct_tier_client
from pytest_mlxstack.stack.endpoint import Endpoint, open_endpoint
from pytest_mlxstack.stack.endpoint_file import NamedEndpoint, load_endpoints_file, open_endpoints
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.kinds import KINDS, LLAMA_CPP
from pytest_mlxstack.stack.pool import ServerPool, read_start_counts
from pytest_mlxstack.stack.requirements import mlx_backend_problem
from pytest_mlxstack.stack.runtime import Stack, start_stack
from pytest_mlxstack.stack.spec import (
    StackSpec,
    StackSpecError,
    default_stack_spec,
    load_stack_file,
    stack_spec_from_mapping,
)
from pytest_mlxstack.text.redact import register_secret
from pytest_mlxstack.wiring import skips
from pytest_mlxstack.wiring.core import new_service_manager, report_progress, settings
from pytest_mlxstack.wiring.matrix import set_run_server
from pytest_mlxstack.wiring.options import add_settings, hand_over, read_setting, run_dir

if TYPE_CHECKING:
    from openai import OpenAI

POOL_DIR_KEY = "pool_dir"

StackFactory = Callable[..., Stack]


@dataclass
class _StackState:
    spec: StackSpec
    is_worker: bool
    pool_dir: Path | None = None  # a worker gets its controller's; else made on first use
    endpoint: Endpoint | None = None  # --mlx-endpoint: a server of somebody else's
    # --mlx-endpoints FILE: several, with the catalog entry each names (endpoint: the first)
    endpoints: list[NamedEndpoint] = field(default_factory=list)


_STATE = pytest.StashKey[_StackState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_settings(
        parser,
        "mlx_stack",
        "mlx_endpoint",
        "mlx_endpoints",
        "mlx_api_key",
        "mlx_endpoint_model",
        "mlx_server_label",
        "mlx_require_stack",
        "mlx_llama_server",
    )


def pytest_configure(config: pytest.Config) -> None:
    LLAMA_CPP.binary_setting = read_setting(config, "mlx_llama_server")
    state = _StackState(spec=_configured_spec(config), is_worker=False)
    state.endpoint = _configured_endpoint(config)
    state.endpoints = _configured_endpoints(config)
    if state.endpoints:
        state.endpoint = state.endpoints[0].endpoint
    _name_the_run_server(config, state)
    pool_dir = run_dir(config, POOL_DIR_KEY)
    if pool_dir is not None:
        state.pool_dir, state.is_worker = pool_dir, True
    config.stash[_STATE] = state


def _name_the_run_server(config: pytest.Config, state: _StackState) -> None:
    """Rows a user's own tests record are served by the endpoint, or by the stack file's kind
    when its tiers share one (vllm-mlx by default); the built-in suites may say otherwise."""
    if state.endpoint is not None:
        set_run_server(config, state.endpoint.server, fallback=True)
        return
    kinds = {tier.kind for tier in state.spec.tiers}
    if len(kinds) == 1:
        (kind,) = kinds
        set_run_server(config, kind, KINDS[kind].version(), fallback=True)


def _pool_dir(config: pytest.Config) -> Path:
    """This run's pool directory, under the mlxstack home (the controller names it)."""
    state = config.stash[_STATE]
    if state.pool_dir is None:
        state.pool_dir = settings(config).home / POOLS_DIR / uuid.uuid4().hex
        # Named after the controller: after a SIGKILL the next session removes it.
        claim(state.pool_dir, Owner.current("pytest"))
    return state.pool_dir


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: every worker shares this run's pool directory."""
    hand_over(node, POOL_DIR_KEY, str(_pool_dir(node.config)))


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller removes the run's pool directory (the servers' HOMEs, the ledger)."""
    state = config.stash.get(_STATE, None)
    if state is None or state.is_worker or state.pool_dir is None:
        return
    shutil.rmtree(state.pool_dir, ignore_errors=True)


def configured_endpoint(config: pytest.Config) -> Endpoint | None:
    """The ``--mlx-endpoint`` server of this run (None: the plugin starts its own stack)."""
    state = config.stash.get(_STATE, None)
    return state.endpoint if state is not None else None


def configured_endpoints(config: pytest.Config) -> list[NamedEndpoint]:
    """The ``--mlx-endpoints`` servers of this run (empty without the file)."""
    state = config.stash.get(_STATE, None)
    return list(state.endpoints) if state is not None else []


def _configured_endpoints(config: pytest.Config) -> list[NamedEndpoint]:
    """Read and asked once, at start: a bad file, entry or server stops the run with one
    sentence naming the file, the entry and the field."""
    path: Path | None = read_setting(config, "mlx_endpoints")
    if path is None:
        return []
    try:
        return open_endpoints(load_endpoints_file(path))
    except StackError as exc:
        raise pytest.UsageError(str(exc)) from None


def _configured_endpoint(config: pytest.Config) -> Endpoint | None:
    """Asked once, at start: a wrong URL, key or model stops the run with one sentence."""
    url: str | None = read_setting(config, "mlx_endpoint")
    if url and read_setting(config, "mlx_endpoints") is not None:
        raise pytest.UsageError(
            "--mlx-endpoint and --mlx-endpoints both name servers; give one of them (list the "
            "single server in the file too)"
        )
    key: str | None = read_setting(config, "mlx_api_key") or None
    if key:  # redacted from logs, reports, junit XML and matrices from here on
        register_secret(key)
    if not url:
        return None
    try:
        return open_endpoint(
            url,
            model=read_setting(config, "mlx_endpoint_model") or None,
            api_key=key,
            label=read_setting(config, "mlx_server_label") or None,
        )
    except StackError as exc:
        raise pytest.UsageError(str(exc)) from None


def _configured_spec(config: pytest.Config) -> StackSpec:
    """The stack file from ``--mlx-stack`` (relative to the invocation directory) or the ini
    key (relative to the ini file), read now so that a broken file stops the run at once."""
    path: Path | None = read_setting(config, "mlx_stack")
    if path is None:
        return default_stack_spec()
    try:
        return load_stack_file(path)
    except StackSpecError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """How often each server was started in the whole run (all workers): 1 is the goal."""
    state = config.stash.get(_STATE, None)
    if state is None or state.is_worker or state.pool_dir is None:
        return
    starts = read_start_counts(state.pool_dir)
    if not starts:
        return
    terminalreporter.section("mlxstack server starts")
    for start in starts:
        flags = " ".join(start.args) or "(no extra flags)"
        terminalreporter.write_line(
            f"{start.model_label} as {start.served_name}: {start.starts} start(s) "
            f"in {start.kind} {flags}"
        )


# -- skips -----------------------------------------------------------------------------------


def _require_stack_extra() -> None:
    """Skip (with what to install) when vllm-mlx, the LiteLLM proxy or MLX cannot run here."""
    for mark in (skips.skip_no_vllm, skips.skip_no_litellm):
        condition, reason = mark.mark.args[0], mark.mark.kwargs["reason"]
        if condition:
            pytest.skip(reason)
    problem = mlx_backend_problem()
    if problem is not None:
        pytest.skip(problem)


def _require_harness_extra() -> None:
    mark = skips.skip_no_openai.mark
    if mark.args[0]:
        pytest.skip(mark.kwargs["reason"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With ``--mlx-require-stack``, a skip because the real stack is missing fails instead:
    a CI job whose install broke must not go green with every stack test skipped."""
    report: pytest.TestReport = yield
    if not report.skipped or hasattr(report, "wasxfail"):
        return report
    if not read_setting(item.config, "mlx_require_stack"):
        return report  # the common case: a skip stays a skip, no stack probing needed
    longrepr = report.longrepr
    reason = longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else ""
    if reason in skips.missing_stack_reasons():
        report.outcome = "failed"
        report.longrepr = (
            "--mlx-require-stack (or MLXSTACK_REQUIRE_STACK=1) is set, but this test was "
            f"skipped because the real stack is missing: {reason}"
        )
    return report


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mlx_server_pool(pytestconfig: pytest.Config) -> Iterator[ServerPool]:
    """The session's vllm-mlx servers: one per (model, flags), shared by every stack.

    ``mlx_server_pool.start_counts()`` says how often each was started (1 unless it died).
    """
    if configured_endpoint(pytestconfig) is None:  # an endpoint needs no server of ours
        _require_stack_extra()
    pool_dir = _pool_dir(pytestconfig)
    with (
        new_service_manager(pytestconfig) as manager,
        ServerPool(
            manager, pool_dir, on_progress=lambda message: report_progress(pytestconfig, message)
        ) as pool,
    ):
        yield pool


@pytest.fixture(scope="session")
def mlx_stack(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    mlx_server_pool: ServerPool,
    model_cache: ModelCache,
) -> Iterator[Stack]:
    """The configured stack (``--mlx-stack``/ini ``mlx_stack``; default: tier ``fast`` on the
    fixture model), started once per session (per xdist worker) and shared."""
    spec = pytestconfig.stash[_STATE].spec
    with new_service_manager(pytestconfig) as manager:
        stack = _start(pytestconfig, spec, manager, tmp_path_factory, mlx_server_pool, model_cache)
        with stack:
            yield stack


@pytest.fixture
def mlx_stack_factory(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    mlx_server_pool: ServerPool,
    model_cache: ModelCache,
) -> Iterator[StackFactory]:
    """``mlx_stack_factory(spec)`` starts a custom stack, stopped when the test ends.

    ``spec`` is a ``StackSpec``, a mapping shaped like a stack file, or the path of one.
    ``pooled=False`` gives the stack its own vllm-mlx servers instead of the session's.
    """
    with new_service_manager(pytestconfig) as manager:
        stacks: list[Stack] = []

        def factory(
            spec: StackSpec | Mapping[str, Any] | str | Path, *, pooled: bool = True
        ) -> Stack:
            pool = mlx_server_pool if pooled else None
            stack = _start(
                pytestconfig, _as_spec(spec), manager, tmp_path_factory, pool, model_cache
            )
            stacks.append(stack)
            return stack

        try:
            yield factory
        finally:
            for stack in reversed(stacks):
                stack.down()


@pytest.fixture(scope="session")
def mlx_default_tier(pytestconfig: pytest.Config) -> str:
    """The name of the configured stack's first tier (``fast`` by default): the ``model=``
    to send through ``openai_client``. Starts nothing."""
    return pytestconfig.stash[_STATE].spec.tiers[0].name


@pytest.fixture
def openai_client(request: pytest.FixtureRequest) -> Iterator[OpenAI]:
    """The real ``openai.OpenAI`` client, through LiteLLM with the stack's master key; ask
    for a tier by its name (``model="fast"``). No retries: a failure shows as it happened."""
    _require_harness_extra()  # before the stack starts: no point starting it to skip
    endpoint = configured_endpoint(request.config)
    if endpoint is not None:  # somebody else's server: model= is mlx_endpoint.model
        with endpoint.client() as client:
            yield client
        return
    stack: Stack = request.getfixturevalue("mlx_stack")
    with proxy_client(stack) as client:
        yield client


@pytest.fixture(scope="session")
def mlx_endpoint(pytestconfig: pytest.Config) -> Endpoint:
    """The ``--mlx-endpoint`` server (URL, model name, detected server); skips without one."""
    endpoint = configured_endpoint(pytestconfig)
    if endpoint is None:
        pytest.skip("no --mlx-endpoint given")
    return endpoint


@pytest.fixture
def tier_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., OpenAI]]:
    """``tier_client("fast")``: an ``openai.OpenAI`` for that tier's vllm-mlx, bypassing
    LiteLLM (``model=`` is ``stack.tier("fast").served_name``). ``tier_client("fast",
    stack=custom)`` does the same for a stack from ``mlx_stack_factory``."""
    _require_harness_extra()
    clients: list[OpenAI] = []

    def make(tier: str, *, stack: Stack | None = None) -> OpenAI:
        target = stack if stack is not None else request.getfixturevalue("mlx_stack")
        client = direct_tier_client(target, tier)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


def _as_spec(spec: StackSpec | Mapping[str, Any] | str | Path) -> StackSpec:
    if isinstance(spec, StackSpec):
        return spec
    if isinstance(spec, Mapping):
        return stack_spec_from_mapping(spec)
    return load_stack_file(spec)


def _start(
    config: pytest.Config,
    spec: StackSpec,
    manager: ServiceManager,
    tmp_path_factory: pytest.TempPathFactory,
    pool: ServerPool | None,
    model_cache: ModelCache,
) -> Stack:
    directory = tmp_path_factory.mktemp("mlx-stack")
    pull = reporting_pull(config, model_cache)
    return start_stack(spec, manager=manager, directory=directory, pool=pool, pull=pull)


def reporting_pull(config: pytest.Config, cache: ModelCache) -> Callable[[str, str | None], Path]:
    """``cache.pull`` that says on the terminal what it downloads: when it starts, the bytes
    so far every ~2 s, and how long it took."""
    return functools.partial(cache.pull, on_progress=lambda line: report_progress(config, line))
