"""Capability probes: one function per capability, each taking an ``openai.OpenAI`` client
and a served model name and returning a ``ProbeResult`` (verdict, reason, evidence and, on
failure, whose fault it is). No pytest here: any harness can call them.

Needs the ``harness`` extra (the ``openai`` package).
"""

from __future__ import annotations

from pytest_mlxstack.probes.capabilities import (
    UNKNOWN_MODEL,
    probe_errors,
    probe_inference,
    probe_multi_turn,
    probe_streaming,
    probe_system_prompt,
    probe_thinking,
    probe_tool_calling,
    probe_tool_calling_streaming,
)
from pytest_mlxstack.probes.parameters import probe_length, probe_stop, probe_usage
from pytest_mlxstack.probes.protocols import probe_messages_api, probe_responses_api
from pytest_mlxstack.probes.proxy import attribute_proxy, blame_tier_down
from pytest_mlxstack.probes.registry import (
    DeclaredCapabilities,
    Probe,
    all_probes,
    capability_names,
    get_probe,
    not_applicable,
    register_capability,
    run_probe,
)
from pytest_mlxstack.probes.stack_checks import (
    probe_concurrency,
    probe_model_listing,
    probe_routing,
)
from pytest_mlxstack.probes.structured import probe_structured_output
from pytest_mlxstack.probes.tool_loop import probe_tool_choice_none, probe_tool_result
from pytest_mlxstack.probes.tool_use import (
    probe_no_call,
    probe_parallel_tool_calls,
    probe_tool_choice_named,
    probe_tool_choice_required,
    probe_tool_selection,
)

__all__ = [
    "UNKNOWN_MODEL",
    "DeclaredCapabilities",
    "Probe",
    "all_probes",
    "attribute_proxy",
    "blame_tier_down",
    "capability_names",
    "get_probe",
    "not_applicable",
    "probe_concurrency",
    "probe_errors",
    "probe_inference",
    "probe_length",
    "probe_messages_api",
    "probe_model_listing",
    "probe_multi_turn",
    "probe_no_call",
    "probe_parallel_tool_calls",
    "probe_responses_api",
    "probe_routing",
    "probe_stop",
    "probe_streaming",
    "probe_structured_output",
    "probe_system_prompt",
    "probe_thinking",
    "probe_tool_calling",
    "probe_tool_calling_streaming",
    "probe_tool_choice_named",
    "probe_tool_choice_none",
    "probe_tool_choice_required",
    "probe_tool_result",
    "probe_tool_selection",
    "probe_usage",
    "register_capability",
    "run_probe",
]
