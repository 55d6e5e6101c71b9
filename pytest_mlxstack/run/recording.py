"""Run a probe for a suite target, record the cell and the row in the matrix, decide the test.

Proxied failures are compared with the same probe straight to the tier's vllm-mlx: when that
passes, the proxy is to blame (``attribute_proxy``); when it finds the server down, the cell
says the tier behind the proxy is down. Only failures pay for the second request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route, Verdict
from pytest_mlxstack.probes import attribute_proxy, blame_tier_down, run_probe
from pytest_mlxstack.run.endpoint import EndpointSuite, EndpointTarget
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.run.session import SuiteStack

if TYPE_CHECKING:
    from openai import OpenAI

    from pytest_mlxstack.run.burst import ProbeBurst


def probe_target(
    capability: str,
    target: SuiteTarget,
    suite: SuiteStack,
    route: Route,
    *,
    direct_failure: ProbeResult | None = None,
) -> ProbeResult:
    """The probe's verdict for ``target`` through ``route`` (``n/a`` if undeclared;
    ``fail``/``server_down`` with the start error if its server did not start).

    ``direct_failure``: the same probe's ``fail`` straight to the server earlier in the run
    (the smoke suite's), which a proxied failure is compared with instead of asking again. A
    direct pass is never reused: the server may have gone down since, and only a fresh
    answer tells that from the proxy's fault."""
    if suite.is_down(target):
        return suite.down_result(capability, target)
    declared = target.entry.capabilities
    direct = suite.direct_client(target)
    if route is Route.DIRECT:
        return run_probe(capability, direct, suite.served_name(target), capabilities=declared)
    proxied = run_probe(
        capability, proxy_client_of(suite, target), target.tier, capabilities=declared
    )
    if proxied.verdict is not Verdict.FAIL:
        return proxied
    alone = direct_failure
    if alone is None or alone.verdict is not Verdict.FAIL:
        alone = run_probe(capability, direct, suite.served_name(target), capabilities=declared)
    return attribute_proxy(alone, proxied)


def proxy_client_of(suite: SuiteStack, target: SuiteTarget) -> OpenAI:
    """The client of ``target``'s "proxied" route: LiteLLM, or (several endpoints) the
    target's own server."""
    if isinstance(suite, EndpointSuite):
        return suite.proxy_client_for(target)
    return suite.proxy_client()


def record(
    result: ProbeResult,
    target: SuiteTarget,
    suite: SuiteStack,
    route: Route,
    matrix: MatrixRecorder,
) -> None:
    """Put ``result`` and the row's facts into the matrix (the stack's master key redacted).

    The start-up time of the servers this process started is reported with every test,
    whichever target the test is about: under xdist the process that started a server may
    run none of its tests. Start counts come from the pool's ledger, the same in every process.
    """
    facts = suite.row_facts(target)
    server = target.server if isinstance(target, EndpointTarget) else None
    matrix.record(
        result,
        model=target.entry.id,
        quant=target.quant,
        route=route,
        repo=facts["repo"],
        revision=facts["revision"],
        secrets=suite.secrets,
        server=server,
    )
    matrix.record_row(model=target.entry.id, quant=target.quant, server=server, **facts)
    for other in suite.targets:
        if other != target and other.tier in suite.started_here:
            matrix.record_row(
                model=other.entry.id,
                quant=other.quant,
                startup_s=suite.startup_s.get(other.tier),
                server_starts=suite.server_starts(other),
            )


def probe_record_check(
    capability: str,
    target: SuiteTarget,
    suite: SuiteStack,
    route: Route,
    matrix: MatrixRecorder,
    probe: Callable[[], ProbeResult] | None = None,
    burst: ProbeBurst | None = None,
) -> ProbeResult:
    """Probe, record, then fail/skip/xfail the calling test as the verdict says.

    ``probe`` replaces the catalog probe of ``capability`` (routing, listing, concurrency);
    it is not called for a target whose server did not start. With a ``burst`` the catalog
    probe's result comes from it (run ahead, with others), and ``probe`` waits until no
    burst probe is in flight.
    """
    if probe is None and burst is not None:
        result = burst.result(capability, target, route)
    elif probe is None or suite.is_down(target):
        result = probe_target(capability, target, suite, route)
    else:
        if burst is not None:
            burst.quiet()
        result = probe()
        if route is Route.PROXIED and result.verdict is Verdict.FAIL:
            # No direct twin of this check: ask the tier's server something simple.
            alone = run_probe("inference", suite.direct_client(target), suite.served_name(target))
            result = blame_tier_down(alone, result)
    record(result, target, suite, route, matrix)
    matrix.check(result)
    return result
