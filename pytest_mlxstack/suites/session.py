"""The stack the built-in suites share: one tier per selected (model, quantization), every
vllm-mlx from the session's server pool (one start per model and flags), one LiteLLM in front.

Smoke tests reach a tier's vllm-mlx directly, harness tests go through LiteLLM by tier name,
integration tests use the stack as a whole. Row facts for the matrix (start-up time, memory,
server starts) are read from the running processes and the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pytest_mlxstack.services import ServiceManager
from pytest_mlxstack.stack import ServerPool, Stack, StackSpec, TierSpec, start_stack
from pytest_mlxstack.stack.clients import proxy_client, tier_client
from pytest_mlxstack.stack.models import PullFunction
from pytest_mlxstack.suites.selection import SuiteTarget

if TYPE_CHECKING:
    from openai import OpenAI

TWIN_SUFFIX = "-twin"


def suite_stack_spec(
    targets: Sequence[SuiteTarget], catalog: Path, *, twin: bool = False
) -> StackSpec:
    """One tier per target; with ``twin`` and a single target, a second tier on the same
    model (the pool serves both from one vllm-mlx), so that routing has two names to tell
    apart."""
    tiers = [TierSpec(name=t.tier, model=t.entry.id, quant=t.quant) for t in targets]
    if twin and len(targets) == 1:
        only = targets[0]
        name = only.tier[: 40 - len(TWIN_SUFFIX)] + TWIN_SUFFIX
        tiers.append(TierSpec(name=name, model=only.entry.id, quant=only.quant))
    return StackSpec(tiers=tuple(tiers), catalog=catalog)


@dataclass
class SuiteStack:
    """The running suite stack, with clients and the facts the matrix rows need."""

    stack: Stack
    pool: ServerPool
    targets: list[SuiteTarget]
    startup_s: dict[str, float] = field(default_factory=dict)  # tier -> seconds to serve
    started_here: set[str] = field(default_factory=set)  # tiers whose server we started
    _clients: dict[str, OpenAI] = field(default_factory=dict, repr=False)

    def direct_client(self, target: SuiteTarget) -> OpenAI:
        """An ``openai.OpenAI`` for the target's own vllm-mlx (``model=served_name``)."""
        key = f"direct:{target.tier}"
        if key not in self._clients:
            self._clients[key] = tier_client(self.stack, target.tier)
        return self._clients[key]

    def proxy_client(self) -> OpenAI:
        """An ``openai.OpenAI`` for LiteLLM with the stack's key (``model=`` a tier name)."""
        if "proxy" not in self._clients:
            self._clients["proxy"] = proxy_client(self.stack)
        return self._clients["proxy"]

    def served_name(self, target: SuiteTarget) -> str:
        return self.stack.tier(target.tier).served_name

    @property
    def tier_names(self) -> list[str]:
        return list(self.stack.tiers)

    def server_starts(self, target: SuiteTarget) -> int:
        """Servers this process started for the target: 1 or 0.

        The pool is shared by every xdist worker of the run and the matrix adds up what each
        process reports, so each reports only its own starts; the total is the run's.
        """
        return int(target.tier in self.started_here)

    def row_facts(self, target: SuiteTarget) -> dict[str, Any]:
        """Keyword arguments for ``mlx_matrix.record_row``."""
        source = target.source
        return {
            "repo": source.hf_repo,
            "revision": source.revision,
            "startup_s": self.startup_s.get(target.tier),
            "memory_mb": _memory_mb(self.stack.tier(target.tier).service.pid),
            "server_starts": self.server_starts(target),
        }

    def close(self) -> None:
        """Close the clients and stop what the stack owns (LiteLLM; the pool keeps its
        servers until the session ends)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.stack.down()


def start_suite_stack(
    targets: Sequence[SuiteTarget],
    catalog: Path,
    *,
    manager: ServiceManager,
    pool: ServerPool,
    directory: Path,
    pull: PullFunction | None,
    twin: bool = False,
) -> SuiteStack:
    """Start the suite stack; the seconds each server this process started took are kept."""
    spec = suite_stack_spec(targets, catalog, twin=twin)
    stack = start_stack(spec, manager=manager, directory=directory, pool=pool, pull=pull)
    startup = {name: server.startup_s for name, server in stack.tiers.items() if server.startup_s}
    ours = {t.tier for t in targets if t.tier in startup}
    return SuiteStack(
        stack=stack, pool=pool, targets=list(targets), startup_s=startup, started_here=ours
    )


def _memory_mb(pid: int) -> float | None:
    """Resident memory of the server and its children, in MB."""
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            total += child.memory_info().rss
    except psutil.Error:
        return None
    return round(total / 1e6, 1)
