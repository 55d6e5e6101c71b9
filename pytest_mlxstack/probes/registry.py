"""The probes by capability name, and the rule that a capability a model lacks is ``n/a``.

A catalog entry says what a model can do; probing a capability it does not claim would turn
an honest "not supported" into a red cell, and skipping it silently would look like a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from openai import OpenAI

from pytest_mlxstack.matrix.verdicts import ProbeResult, Verdict
from pytest_mlxstack.probes.capabilities import (
    probe_errors,
    probe_inference,
    probe_multi_turn,
    probe_streaming,
    probe_system_prompt,
    probe_thinking,
    probe_tool_calling,
    probe_tool_calling_streaming,
)


class DeclaredCapabilities(Protocol):
    """What a catalog entry's ``capabilities`` offers (``catalog.Capabilities`` fits)."""

    @property
    def tool_calling(self) -> bool: ...

    @property
    def thinking(self) -> bool: ...


@dataclass(frozen=True)
class Probe:
    capability: str
    run: Callable[..., ProbeResult]
    requires: str | None = None  # the ``capabilities`` flag the model must declare

    def applies_to(self, capabilities: DeclaredCapabilities | None) -> bool:
        if self.requires is None or capabilities is None:
            return True
        return bool(getattr(capabilities, self.requires))


PROBES: dict[str, Probe] = {
    probe.capability: probe
    for probe in (
        Probe("inference", probe_inference),
        Probe("system_prompt", probe_system_prompt),
        Probe("multi_turn", probe_multi_turn),
        Probe("streaming", probe_streaming),
        Probe("tool_calling", probe_tool_calling, requires="tool_calling"),
        Probe("tool_calling_streaming", probe_tool_calling_streaming, requires="tool_calling"),
        Probe("thinking", probe_thinking, requires="thinking"),
        Probe("errors", probe_errors),
    )
}
CAPABILITIES = tuple(PROBES)


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
    """Run the probe for ``capability``, or return ``n/a`` when the model does not claim it."""
    try:
        probe = PROBES[capability]
    except KeyError:
        raise ValueError(
            f"unknown capability {capability!r}; probes exist for {', '.join(CAPABILITIES)}"
        ) from None
    if not probe.applies_to(capabilities):
        return not_applicable(
            capability,
            f"the catalog entry does not declare {probe.requires}, so {capability} is not probed",
        )
    return probe.run(client, model, **options)
