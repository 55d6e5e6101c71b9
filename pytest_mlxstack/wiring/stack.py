"""Pytest wiring for stacks: the ``--mlx-stack`` option, the server pool, the stack fixtures.

Kept thin: the logic lives in ``pytest_mlxstack.stack``. One vllm-mlx per (model, flags) runs
per session (or per xdist worker); under ``--dist loadgroup`` every test that uses a stack
fixture is put in one xdist group, so a model is loaded once in the whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlxstack import skips
from pytest_mlxstack.cache import ModelCache
from pytest_mlxstack.services import ServiceManager
from pytest_mlxstack.stack.clients import proxy_client
from pytest_mlxstack.stack.clients import tier_client as direct_tier_client
from pytest_mlxstack.stack.runtime import Stack, start_stack
from pytest_mlxstack.stack.servers import PoolStart, ServerPool
from pytest_mlxstack.stack.spec import (
    StackSpec,
    StackSpecError,
    default_stack_spec,
    load_stack_file,
    stack_spec_from_mapping,
)
from pytest_mlxstack.wiring.core import new_service_manager

if TYPE_CHECKING:
    from openai import OpenAI

XDIST_GROUP = "mlxstack"
STACK_FIXTURES = frozenset(
    {"mlx_stack", "mlx_stack_factory", "mlx_server_pool", "openai_client", "tier_client"}
)
STARTS_OUTPUT_KEY = "mlxstack_pool_starts"

StackFactory = Callable[..., Stack]


@dataclass
class _StackState:
    spec: StackSpec
    pool: ServerPool | None = None
    worker_starts: list[dict[str, Any]] = field(default_factory=list)


_STATE = pytest.StashKey[_StackState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlxstack")
    group.addoption(
        "--mlx-stack",
        dest="mlx_stack",
        metavar="FILE",
        default=None,
        help="YAML stack file for the mlx_stack fixture (ini: mlx_stack; default: one tier "
        "'fast' on the fixture model tiny-chat).",
    )
    parser.addini("mlx_stack", "YAML stack file for the mlx_stack fixture.", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = _StackState(spec=_configured_spec(config))


def _configured_spec(config: pytest.Config) -> StackSpec:
    """The stack file from ``--mlx-stack`` (relative to the invocation directory) or the ini
    key (relative to the ini file), read now so that a broken file stops the run at once."""
    option = config.getoption("mlx_stack")
    ini = str(config.getini("mlx_stack") or "").strip()
    if option:
        path = config.invocation_params.dir / Path(option).expanduser()
    elif ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        path = base / Path(ini).expanduser()
    else:
        return default_stack_spec()
    try:
        return load_stack_file(path)
    except StackSpecError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``, send every stack user to one worker (one model load).

    Runs before xdist reads the groups; a test that already has an ``xdist_group`` keeps it.
    """
    if config.getoption("dist", default="no") != "loadgroup":
        return
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & STACK_FIXTURES and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(XDIST_GROUP))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands its pool's start counts to the controller (``pytest_testnodedown``)."""
    state = session.config.stash.get(_STATE, None)
    workeroutput = getattr(session.config, "workeroutput", None)
    if state is None or state.pool is None or workeroutput is None:
        return
    workeroutput[STARTS_OUTPUT_KEY] = [_start_payload(s) for s in state.pool.start_counts()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Controller side of the above (an xdist hook; absent without xdist)."""
    output = getattr(node, "workeroutput", None) or {}
    state = node.config.stash.get(_STATE, None)
    if state is not None:
        state.worker_starts.extend(output.get(STARTS_OUTPUT_KEY, []))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    starts = list(state.worker_starts)
    if state.pool is not None:
        starts += [_start_payload(s) for s in state.pool.start_counts()]
    if not starts:
        return
    terminalreporter.section("mlxstack vllm-mlx starts")
    for entry in starts:
        flags = " ".join(entry["args"]) or "(no extra flags)"
        terminalreporter.write_line(
            f"{entry['model']} as {entry['served_name']}: {entry['starts']} start(s) {flags}"
        )


def _start_payload(start: PoolStart) -> dict[str, Any]:
    return {
        "model": start.model_label,
        "served_name": start.served_name,
        "args": list(start.args),
        "starts": start.starts,
    }


# -- skips -----------------------------------------------------------------------------------


def _require_stack_extra() -> None:
    """Skip (with what to install) when vllm-mlx, the LiteLLM proxy or MLX cannot run here."""
    for mark in (skips.skip_no_vllm, skips.skip_no_litellm):
        condition, reason = mark.mark.args[0], mark.mark.kwargs["reason"]
        if condition:
            pytest.skip(reason)
    problem = skips.mlx_backend_problem()
    if problem is not None:
        pytest.skip(problem)


def _require_harness_extra() -> None:
    mark = skips.skip_no_openai.mark
    if mark.args[0]:
        pytest.skip(mark.kwargs["reason"])


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mlx_server_pool(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerPool]:
    """The session's vllm-mlx servers: one per (model, flags), shared by every stack.

    ``mlx_server_pool.start_counts()`` says how often each was started (1 unless it died).
    """
    _require_stack_extra()
    state = pytestconfig.stash[_STATE]
    with new_service_manager(pytestconfig) as manager:
        pool = ServerPool(manager, tmp_path_factory.mktemp("mlx-pool"))
        state.pool = pool
        try:
            yield pool
        finally:
            pool.close()


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
        stack = _start(spec, manager, tmp_path_factory, mlx_server_pool, model_cache)
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
            stack = _start(_as_spec(spec), manager, tmp_path_factory, pool, model_cache)
            stacks.append(stack)
            return stack

        try:
            yield factory
        finally:
            for stack in reversed(stacks):
                stack.down()


@pytest.fixture
def openai_client(mlx_stack: Stack) -> Iterator[OpenAI]:
    """The real ``openai.OpenAI`` client, through LiteLLM with the stack's master key; ask
    for a tier by its name (``model="fast"``). No retries: a failure shows as it happened."""
    _require_harness_extra()
    with proxy_client(mlx_stack) as client:
        yield client


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
    spec: StackSpec,
    manager: ServiceManager,
    tmp_path_factory: pytest.TempPathFactory,
    pool: ServerPool | None,
    model_cache: ModelCache,
) -> Stack:
    directory = tmp_path_factory.mktemp("mlx-stack")
    return start_stack(spec, manager=manager, directory=directory, pool=pool, pull=model_cache.pull)
