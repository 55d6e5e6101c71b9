"""The probes by capability, and the rule that a capability a model lacks is ``n/a``.

Built from the declarations (``matrix.capabilities``) and the probe functions bound to them
(``probes.binding``); the suites and the matrix's column order are generated from the same
declarations. A catalog entry says what a model can do; probing a capability it does not claim
would turn an honest "not supported" into a red cell, and skipping it silently would look like
a pass.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol

from openai import OpenAI

from pytest_mlxstack.matrix.capabilities import DECLARED, CapabilitySpec, declare
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route, Verdict
from pytest_mlxstack.probes import budget
from pytest_mlxstack.probes import capabilities as _builtin_probes  # noqa: F401  (binds them)
from pytest_mlxstack.probes import parameters as _parameters  # noqa: F401  (binds them)
from pytest_mlxstack.probes import protocols as _protocols  # noqa: F401  (binds them)
from pytest_mlxstack.probes import stack_checks as _stack_checks  # noqa: F401  (binds them)
from pytest_mlxstack.probes import tool_loop as _tool_loop  # noqa: F401  (binds them)
from pytest_mlxstack.probes.binding import BOUND, ProbeFunction, bind


class DeclaredCapabilities(Protocol):
    """What a catalog entry's ``capabilities`` offers (``catalog.Capabilities`` fits); a
    capability's ``requires`` names its flags, read with ``getattr``."""

    @property
    def tool_calling(self) -> bool: ...

    @property
    def thinking(self) -> bool: ...


@dataclass(frozen=True)
class Probe:
    """A declared capability and the function that probes it."""

    spec: CapabilitySpec
    run: ProbeFunction

    @property
    def capability(self) -> str:
        return self.spec.name

    @property
    def requires(self) -> tuple[str, ...]:
        return self.spec.requires

    def applies_to(self, capabilities: DeclaredCapabilities | None) -> bool:
        return self.spec.applies_to(capabilities)


def get_probe(capability: str) -> Probe:
    """The probe of ``capability``; ``ValueError`` naming the known ones otherwise."""
    if capability not in DECLARED or capability not in BOUND:
        known = ", ".join(name for name in DECLARED if name in BOUND)
        raise ValueError(f"unknown capability {capability!r}; probes exist for {known}")
    return Probe(DECLARED[capability], BOUND[capability])


def all_probes(*, route: Route | None = None, kind: str | None = "chat") -> list[Probe]:
    """Every bound probe in column order, of ``kind`` (None: any), probed on ``route``."""
    found = []
    for name, spec in DECLARED.items():
        if name not in BOUND or (kind is not None and spec.kind != kind):
            continue
        if route is None or route in spec.routes:
            found.append(Probe(spec, BOUND[name]))
    return found


def capability_names(*, route: Route | None = None, kind: str | None = "chat") -> tuple[str, ...]:
    """The names of ``all_probes(route=..., kind=...)``: what a generic suite test runs."""
    return tuple(probe.capability for probe in all_probes(route=route, kind=kind))


def register_capability(spec: CapabilitySpec, probe: ProbeFunction) -> Probe:
    """Declare a new capability and its probe in one call (for plugins and extensions).

    The column goes after the built-in ones; a ``chat`` capability is probed by the smoke
    suite (direct) and the harness suite (proxied) as ``spec.routes`` says.
    """
    declare(spec)
    bind(spec.name, probe)
    return Probe(spec, probe)


def unbound() -> list[str]:
    """Declared capabilities without a probe: a declaration that would never be probed."""
    return [name for name in DECLARED if name not in BOUND]


def not_applicable(capability: str, reason: str) -> ProbeResult:
    return ProbeResult(capability=capability, verdict=Verdict.NOT_APPLICABLE, reason=reason)


def run_probe(
    capability: str,
    client: OpenAI,
    model: str,
    *,
    capabilities: DeclaredCapabilities | None = None,
    **options: Any,
) -> ProbeResult:
    """Run the probe for ``capability``, or return ``n/a`` when the model does not claim it.

    ``capabilities`` is what the catalog entry declares (``catalog.Capabilities``), or None
    to probe regardless.
    """
    probe = get_probe(capability)
    missing = probe.spec.missing(capabilities)
    if missing:
        return not_applicable(
            capability,
            f"the catalog entry does not declare {', '.join(missing)}, so {capability} is "
            f"not probed",
        )
    if "max_tokens" not in options and _takes_budget(probe):
        options["max_tokens"] = budget.for_capability(capability)
    if "declared" in inspect.signature(probe.run).parameters:
        options.setdefault("declared", capabilities)  # a session probe skips undeclared steps
    return probe.run(client, model, **options)


def _takes_budget(probe: Probe) -> bool:
    """Whether the probe's ``max_tokens`` is a budget (the ``length`` probe's is the test)."""
    if probe.capability == "length":
        return False
    return "max_tokens" in inspect.signature(probe.run).parameters
