"""The stack the built-in suites share: one tier per selected (model, quantization), every
vllm-mlx from the session's server pool (one start per model and flags), one LiteLLM in front.

Smoke tests reach a tier's vllm-mlx directly, harness tests go through LiteLLM by tier name,
integration tests use the stack as a whole. Row facts for the matrix (start-up time, memory,
server starts) are read from the running processes and the pool's ledger; the performance
figures (time to first token, decode and prompt tokens per second) from one streamed request
per model and process, straight to its vllm-mlx, the first time the model's row is recorded.

Every model's server starts at the same time as the others and as LiteLLM (as many as fit in
memory; ``stack/startup.py``): a model whose server does not start (broken weights, a missing
folder, a crash while loading) is kept as *down*, with the error and the end of its log, and
the stack runs with the others (LiteLLM routes only those). Every capability test of a down
model records a ``fail`` cell attributed ``server_down`` carrying that evidence, so one broken
model costs its own cells, not the whole matrix.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.stack import ServerPool, Stack, StackSpec, TierSpec, start_stack
from pytest_mlxstack.stack.clients import proxy_client, tier_client
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.kinds import DEFAULT_KIND
from pytest_mlxstack.stack.models import PullFunction, ResolvedModel

if TYPE_CHECKING:
    from openai import OpenAI

    from pytest_mlxstack.probes.performance import Performance

TWIN_SUFFIX = "-twin"
FIXTURE_PREFIX = "fixture:"


def suite_stack_spec(
    targets: Sequence[SuiteTarget],
    catalog: Path,
    *,
    twin: bool = False,
    kind: str = DEFAULT_KIND,
) -> StackSpec:
    """One tier per target; with ``twin`` and a single target, a second tier on the same
    model (the pool serves both from one vllm-mlx), so that routing has two names to tell
    apart."""
    tiers = [TierSpec(name=t.tier, model=t.entry.id, quant=t.quant, kind=kind) for t in targets]
    if twin and len(targets) == 1:
        only = targets[0]
        name = only.tier[: 40 - len(TWIN_SUFFIX)] + TWIN_SUFFIX
        tiers.append(TierSpec(name=name, model=only.entry.id, quant=only.quant, kind=kind))
    return StackSpec(tiers=tuple(tiers), catalog=catalog)


@dataclass(frozen=True)
class TierDown:
    """Why a target's server did not start: the error's first line, and the rest (the end of
    the server's log), both already redacted of the run's known secrets."""

    error: str
    detail: str = ""


@dataclass
class SuiteStack:
    """The running suite stack, with clients and the facts the matrix rows need.

    ``down`` holds the targets whose server did not start; the stack serves the others (and
    is missing altogether when none started: ``stack`` then raises ``StackError``).
    """

    running: Stack | None
    pool: ServerPool | None  # None: nothing of ours serves it (an endpoint)
    targets: list[SuiteTarget]
    startup_s: dict[str, float] = field(default_factory=dict)  # tier -> seconds to serve
    started_here: set[str] = field(default_factory=set)  # tiers whose server we started
    down: dict[str, TierDown] = field(default_factory=dict)  # tier -> why it did not start
    served: dict[str, tuple[TierSpec, ResolvedModel]] = field(default_factory=dict, repr=False)
    measured: dict[str, Performance] = field(default_factory=dict)  # tier -> its speed
    _clients: dict[str, OpenAI] = field(default_factory=dict, repr=False)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def stack(self) -> Stack:
        """The running stack; ``StackError`` when no target's server started."""
        if self.running is None:
            reasons = "; ".join(f"{tier}: {why.error}" for tier, why in self.down.items())
            raise StackError(f"no model of the suite stack started ({reasons})")
        return self.running

    @property
    def secrets(self) -> tuple[str, ...]:
        """Exact values the matrix must never show (the stack's LiteLLM master key)."""
        return (self.running.master_key.reveal(),) if self.running is not None else ()

    def is_down(self, target: SuiteTarget) -> bool:
        return target.tier in self.down

    def down_result(self, capability: str, target: SuiteTarget) -> ProbeResult:
        """The ``fail`` / ``server_down`` verdict of any probe of a target that did not start."""
        why = self.down[target.tier]
        notes = [why.error] + ([why.detail] if why.detail else [])
        return ProbeResult(
            capability=capability,
            verdict=Verdict.FAIL,
            reason=f"the server did not start, so nothing was asked: {why.error}",
            attribution=Attribution.SERVER_DOWN,
            evidence=Evidence(notes=notes),
        )

    def direct_client(self, target: SuiteTarget) -> OpenAI:
        """An ``openai.OpenAI`` for the target's own vllm-mlx (``model=served_name``)."""
        key = f"direct:{target.tier}"
        with self._clients_lock:  # probes of a burst ask from several threads
            if key not in self._clients:
                self._clients[key] = tier_client(self.stack, target.tier)
            return self._clients[key]

    def proxy_client(self) -> OpenAI:
        """An ``openai.OpenAI`` for LiteLLM with the stack's key (``model=`` a tier name)."""
        with self._clients_lock:
            if "proxy" not in self._clients:
                self._clients["proxy"] = proxy_client(self.stack)
            return self._clients["proxy"]

    def served_name(self, target: SuiteTarget) -> str:
        return self.stack.tier(target.tier).served_name

    @property
    def tier_names(self) -> list[str]:
        return list(self.stack.tiers)

    def server_starts(self, target: SuiteTarget) -> int:
        """How often the run started the target's server (model and flags) so far: 1, more
        when it died and a later ``serve`` started it again, 0 when it never started.

        Read from the pool's ledger, which every xdist worker of the run shares, so each
        process reports the run's count and the matrix keeps the largest.
        """
        served = self.served.get(target.tier)
        if served is None or self.pool is None:
            return 0
        return self.pool.starts_of(*served)

    def performance(self, target: SuiteTarget) -> Performance:
        """The target's speed, measured once per process with one streamed request to its own
        vllm-mlx (nothing measured for a target whose server did not start)."""
        # the probes need the openai client (harness extra): imported when first measured
        from pytest_mlxstack.probes.performance import Performance, measure_performance

        if target.tier not in self.measured:
            self.measured[target.tier] = (
                Performance()
                if self.is_down(target)
                else measure_performance(self.direct_client(target), self.served_name(target))
            )
        return self.measured[target.tier]

    def row_facts(self, target: SuiteTarget) -> dict[str, Any]:
        """Keyword arguments for ``mlx_matrix.record_row``."""
        repo, revision = row_source(target)
        running = None if self.is_down(target) else self.stack.tier(target.tier).service.pid
        return {
            "repo": repo,
            "revision": revision,
            "startup_s": self.startup_s.get(target.tier),
            "memory_mb": _memory_mb(running) if running is not None else None,
            "server_starts": self.server_starts(target),
            **self.performance(target).as_row_facts(),
        }

    def close(self) -> None:
        """Close the clients and stop what the stack owns (LiteLLM; the pool keeps its
        servers until the session ends)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self.running is not None:
            self.running.down()


def start_suite_stack(
    targets: Sequence[SuiteTarget],
    catalog: Path,
    *,
    manager: ServiceManager,
    pool: ServerPool,
    directory: Path,
    pull: PullFunction | None,
    twin: bool = False,
    redact: Callable[[str], str] | None = None,
    kind: str = DEFAULT_KIND,
) -> SuiteStack:
    """Start every target's server from the pool and LiteLLM in front, all at once
    (``start_stack``: bounded by memory; LiteLLM routes the servers that started).

    A target whose server does not start is recorded in ``down`` (its error passed through
    ``redact``, by default the manager's); the others are unaffected. ``StackError`` only when
    the catalog cannot be read or LiteLLM does not start. The seconds each server this process
    started took are kept.
    """
    redact = redact or manager.redact
    spec = suite_stack_spec(targets, catalog, twin=twin, kind=kind)
    suite = SuiteStack(running=None, pool=pool, targets=list(targets))
    by_tier = {target.tier: target for target in targets}

    def on_down(tier: str, exc: StackError) -> None:
        target = by_tier.get(tier)
        if target is None:  # the twin tier: its model's own tier says why
            return
        suite.down[tier] = _why_down(exc, redact)
        pool.on_progress(
            f"{target.label} did not start; its tests fail as server_down "
            f"({suite.down[tier].error})"
        )

    running = start_stack(
        spec, manager=manager, directory=directory, pool=pool, pull=pull, on_down=on_down
    )
    for tier, server in running.tiers.items():
        if tier not in by_tier:
            continue
        suite.served[tier] = (spec.tier(tier), running.resolved[tier])
        if server.startup_s:
            suite.startup_s[tier] = server.startup_s
            suite.started_here.add(tier)
    if running.tiers:
        suite.running = running
    else:
        running.down()
    return suite


def _why_down(exc: StackError, redact: Callable[[str], str]) -> TierDown:
    tail = redact(exc.detail)
    detail = f"last lines of its log:\n{tail}" if tail else ""
    return TierDown(error=redact(str(exc)), detail=detail)


def row_source(target: SuiteTarget) -> tuple[str | None, str | None]:
    """Where a row's weights came from, for the matrix's Source column: the Hub repository
    and revision; for a fixture model shipped with the plugin ``fixture:<name>`` and the first
    12 hex digits of its weights' sha256 (from its ``BUILD.json``); for another local folder,
    its path."""
    source = target.source
    if source.hf_repo is not None:
        return source.hf_repo, source.revision
    assert source.local_path is not None
    folder = Path(source.local_path)
    if _is_fixture_model(folder):
        return FIXTURE_PREFIX + folder.name, _build_hash(folder)
    return str(folder), None


def _is_fixture_model(folder: Path) -> bool:
    try:
        from pytest_mlxstack.fixture_models import VARIANTS, fixture_model_path
    except ImportError:  # the fixture models are not part of this installation
        return False
    return folder.name in VARIANTS and folder.resolve() == fixture_model_path(folder.name)


def _build_hash(folder: Path) -> str | None:
    try:
        build = json.loads((folder / "BUILD.json").read_text(encoding="utf-8"))
        return str(build["files"]["model.safetensors"])[:12]
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
