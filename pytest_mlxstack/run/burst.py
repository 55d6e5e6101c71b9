"""The built-in suites' generic probes, run a few at a time ahead of their tests.

Each smoke and harness test probes one (capability, model, route), and run one after another
the machine mostly waits: on the client, on LiteLLM, on one server at a time. So the first
such test of a route starts a *burst*: every planned probe of that route goes to a pool of
``width`` threads, in test order but interleaved across the models (so that the servers share
the work), and each test waits for its own result and records it as before. Test ids,
verdicts, cells and the order of the report do not change.

- Only the probes of the tests pytest selected are planned (after ``-k``, ``-m`` and
  deselection); a test outside the plan probes on its own, as before.
- Each model's speed (the row's performance figures) is measured before the burst, alone.
- A capability declared ``exclusive`` is never in a burst: its test waits until the burst
  is over and probes alone; so do the checks with a probe of their own (routing, concurrency,
  model listing). A burst of one route is over before the other route's starts.
- A proxied failure is compared with the direct route's failure of the same probe from the
  direct burst instead of asking the server again (a direct pass is asked again: the server
  may have gone down since).
- ``width`` 1 runs every probe in its own test, as before. Under xdist each worker does so
  (xdist spreads the tests already, and a worker does not know which tests it will get).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from pytest_mlxstack.matrix.capabilities import DECLARED
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route, Verdict
from pytest_mlxstack.run.selection import SuiteTarget
from pytest_mlxstack.run.session import SuiteStack


@dataclass(frozen=True)
class PlannedProbe:
    """One selected generic test: which capability of which target on which route."""

    capability: str
    target: SuiteTarget
    route: Route

    @property
    def key(self) -> tuple[str, str, Route]:
        return (self.capability, self.target.tier, self.route)


def exclusive(capability: str) -> bool:
    spec = DECLARED.get(capability)
    return spec is not None and spec.exclusive


def interleaved(plan: Sequence[PlannedProbe]) -> list[PlannedProbe]:
    """The plan in test order per model, the models taking turns (A1 B1 A2 B2 ...)."""
    by_target: dict[str, list[PlannedProbe]] = {}
    for probe in plan:
        by_target.setdefault(probe.target.tier, []).append(probe)
    queues = list(by_target.values())
    order: list[PlannedProbe] = []
    for turn in range(max((len(queue) for queue in queues), default=0)):
        order += [queue[turn] for queue in queues if turn < len(queue)]
    return order


class ProbeBurst:
    """The planned probes of a suite stack, run ``width`` at a time (see the module doc)."""

    def __init__(self, suite: SuiteStack, plan: Sequence[PlannedProbe], width: int) -> None:
        self.suite = suite
        self.width = width
        self.plan = [probe for probe in plan if not exclusive(probe.capability)]
        self._planned = {probe.key for probe in self.plan}
        self._futures: dict[tuple[str, str, Route], Future[ProbeResult]] = {}
        self._started: set[Route] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def result(self, capability: str, target: SuiteTarget, route: Route) -> ProbeResult:
        """The probe's verdict: from the burst of ``route`` (started by the first call) when
        planned, else probed here once nothing else is in flight."""
        from pytest_mlxstack.run.recording import probe_target  # needs the harness extra

        key = (capability, target.tier, route)
        if self.width <= 1 or key not in self._planned:
            self.quiet()
            return probe_target(capability, target, self.suite, route)
        self._start(route)
        return self._futures[key].result()

    def quiet(self) -> None:
        """Wait until no probe of any burst is in flight (before a probe that runs alone)."""
        with self._lock:
            pending = [future for future in self._futures.values() if not future.done()]
        wait(pending)

    def _start(self, route: Route) -> None:
        from pytest_mlxstack.run.recording import probe_target  # needs the harness extra

        with self._lock:
            if route in self._started:
                return
        self.quiet()  # the other route's burst is over first
        with self._lock:
            if route in self._started:
                return
            self._started.add(route)
            chosen = interleaved([probe for probe in self.plan if probe.route is route])
            for target in {probe.target.tier: probe.target for probe in chosen}.values():
                self.suite.performance(target)  # measured alone, before the burst
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.width, thread_name_prefix="mlx-probe")
            for probe in chosen:
                self._futures[probe.key] = self._executor.submit(
                    probe_target,
                    probe.capability,
                    probe.target,
                    self.suite,
                    probe.route,
                    direct_failure=self._direct_failure(probe),
                )

    def _direct_failure(self, probe: PlannedProbe) -> ProbeResult | None:
        """The direct route's failure of the same probe, if its burst found one (a proxied
        failure is compared with it instead of asking the server again)."""
        if probe.route is not Route.PROXIED:
            return None
        done = self._futures.get((probe.capability, probe.target.tier, Route.DIRECT))
        if done is None or not done.done() or done.exception() is not None:
            return None
        result = done.result()
        return result if result.verdict is Verdict.FAIL else None

    def close(self) -> None:
        """Drop the probes not begun, wait for those in flight. Idempotent."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
