"""Blame the proxy when the same probe passes straight to vllm-mlx and fails through LiteLLM,
and blame the tier behind it when that is down (LiteLLM then answers 500 "Connection error",
which alone would read as ``server_error``)."""

from __future__ import annotations

import dataclasses

from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Verdict


def attribute_proxy(direct: ProbeResult, proxied: ProbeResult) -> ProbeResult:
    """``proxied``, re-attributed to ``proxy`` when it failed and ``direct`` passed, and to
    ``server_down`` when it failed and ``direct`` found the tier's server down.

    Whatever the proxied failure looked like (a 500 from LiteLLM, a missing field, a timeout),
    the model server did the job on its own, so the layer in between is at fault. Otherwise
    ``proxied`` is returned unchanged.
    """
    if direct.capability != proxied.capability:
        raise ValueError(
            f"attribute_proxy() compares one capability, got {direct.capability!r} direct and "
            f"{proxied.capability!r} proxied"
        )
    if proxied.verdict is not Verdict.FAIL:
        return proxied
    if direct.verdict is Verdict.FAIL and direct.attribution is Attribution.SERVER_DOWN:
        return blame_tier_down(direct, proxied)
    if direct.verdict is not Verdict.PASS and not _passed_step_direct(direct, proxied):
        return proxied
    if proxied.attribution is Attribution.PROXY:
        return proxied
    was = proxied.attribution.value if proxied.attribution else "unattributed"
    notes = [*proxied.evidence.notes, f"attributed to {was} before comparing with the direct route"]
    return dataclasses.replace(
        proxied,
        attribution=Attribution.PROXY,
        reason=f"works direct, fails through the proxy: {proxied.reason}",
        evidence=dataclasses.replace(proxied.evidence, notes=notes),
    )


def _passed_step_direct(direct: ProbeResult, proxied: ProbeResult) -> bool:
    """Whether the step the proxied session failed at passed direct (protocol probes walk
    several steps and say which passed; the direct one may fail at a later step)."""
    step = proxied.evidence.response.get("failed_step")
    return step is not None and step in direct.evidence.response.get("steps_passed", [])


def blame_tier_down(direct: ProbeResult, proxied: ProbeResult) -> ProbeResult:
    """The proxied failure, blamed on the dead server behind the proxy when ``direct`` (any
    probe straight to the tier's server) found it down, with that attempt as evidence;
    otherwise ``proxied`` unchanged. For proxied checks with no direct twin (routing,
    concurrency), where ``attribute_proxy`` cannot compare like with like."""
    if proxied.verdict is not Verdict.FAIL or direct.attribution is not Attribution.SERVER_DOWN:
        return proxied
    was = proxied.attribution.value if proxied.attribution else "unattributed"
    notes = [
        *proxied.evidence.notes,
        f"attributed to {was} through the proxy; the same probe straight to the tier's "
        f"server failed: {direct.reason}",
        *direct.evidence.notes,
    ]
    return dataclasses.replace(
        proxied,
        attribution=Attribution.SERVER_DOWN,
        reason=f"the tier's server behind the proxy is down: {direct.reason} (through the "
        f"proxy: {proxied.reason})",
        evidence=dataclasses.replace(proxied.evidence, notes=notes),
    )
