"""The capabilities the matrix has columns for: name, title, what each needs of a catalog
entry, the routes it is probed on, in column order.

This is the one declaration of a capability. It lives low (beside the matrix, which orders its
columns by it) and holds no probe code; ``probes.registry`` binds each declared name to its
probe function, and the suites are generated from both. Adding a capability is one
``CapabilitySpec`` here (or ``probes.register_capability`` from a plugin) and one probe function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.matrix.verdicts import Route

BOTH_ROUTES = (Route.DIRECT, Route.PROXIED)
# chat: ``probe(client, model, **options)``, run by the generic smoke and harness tests on
# every route it lists; stack: needs the stack around the model, run by its own suite test.
Kind = Literal["chat", "stack"]


@dataclass(frozen=True)
class CapabilitySpec:
    """One matrix column: what it is called and shown as, and when it is probed."""

    name: str
    title: str
    requires: tuple[str, ...] = ()  # ``capabilities`` flags the catalog entry must declare
    routes: tuple[Route, ...] = BOTH_ROUTES
    kind: Kind = "chat"
    sent: str = ""  # what the probe sends (docs/tiers.md)
    passes: str = ""  # what passes
    exclusive: bool = False  # never probed beside other probes (run/burst.py): load-sensitive

    def applies_to(self, declared: object | None) -> bool:
        """Whether a model declaring ``declared`` (a ``catalog.Capabilities``) is probed."""
        if declared is None:
            return True
        return all(bool(getattr(declared, flag, False)) for flag in self.requires)

    def missing(self, declared: object | None) -> list[str]:
        """The required flags ``declared`` lacks."""
        if declared is None:
            return []
        return [flag for flag in self.requires if not getattr(declared, flag, False)]


class DuplicateCapabilityError(MlxStackError, ValueError):
    """A capability name declared twice: the second would silently replace a column."""


DECLARED: dict[str, CapabilitySpec] = {}


def declare(spec: CapabilitySpec) -> CapabilitySpec:
    """Add a column after the ones already declared; a name is declared once."""
    if spec.name in DECLARED:
        raise DuplicateCapabilityError(
            f"the capability {spec.name!r} is already declared; choose another name"
        )
    if not spec.routes:
        raise ValueError(f"the capability {spec.name!r} needs at least one route")
    DECLARED[spec.name] = spec
    return spec


def capability_order() -> tuple[str, ...]:
    """Every declared capability, in column order."""
    return tuple(DECLARED)


def capability_title(capability: str) -> str:
    """The declared title (what the matrix page shows on hover); the name when undeclared."""
    spec = DECLARED.get(capability)
    return spec.title if spec is not None else capability


def capability_rank(capability: str) -> tuple[int, str]:
    """Sort key: declared columns in declaration order, unknown ones after, alphabetically."""
    order = capability_order()
    if capability in order:
        return (order.index(capability), capability)
    return (len(order), capability)


TOOLS = ("tool_calling",)
for _spec in (
    CapabilitySpec(
        "inference",
        "Chat",
        sent="'Count to N.' (N drawn per run)",
        passes="exactly the numbers 1 to N, no markup",
    ),
    CapabilitySpec(
        "system_prompt",
        "System message",
        sent="a pirate system message, then 'Say hello.'",
        passes="a pirate greeting (ahoy, matey, arr...), no markup",
    ),
    CapabilitySpec(
        "multi_turn",
        "Multi-turn",
        sent="two conversations, each 'My name is X.' / reply / 'What is my name?' with two "
        "names drawn per run",
        passes="each answer holds its own name and not the other one, no markup",
    ),
    CapabilitySpec(
        "streaming",
        "Streaming",
        sent="'Count to N.' streamed and not",
        passes="several content chunks, a finish_reason, the exact count, equal to the "
        "non-streamed answer",
    ),
    CapabilitySpec(
        "tool_calling",
        "Tool calling",
        requires=TOOLS,
        sent="'What is the weather in C?' with get_weather (C drawn per run)",
        passes="one get_weather call, arguments valid against its schema naming C, "
        "finish_reason tool_calls",
    ),
    CapabilitySpec(
        "tool_calling_streaming",
        "Tool calling (streamed)",
        requires=TOOLS,
        sent="the tool_calling chat, streamed and not",
        passes="the assembled streamed call is right and equals the non-streamed one",
    ),
    CapabilitySpec(
        "tool_result",
        "Tool result",
        requires=TOOLS,
        sent="the weather question, the get_weather call and its result as a tool message "
        "(city and report drawn per run, e.g. 'rainy, 12 celsius')",
        passes="prose naming the city, the condition and the temperature, no new call, no markup",
    ),
    CapabilitySpec(
        "tool_choice_none",
        "tool_choice none",
        requires=TOOLS,
        sent="the tool_calling chat with tool_choice 'none'",
        passes="prose, no tool call, no markup",
    ),
    CapabilitySpec(
        "tool_choice_required",
        "tool_choice required",
        requires=TOOLS,
        sent="the tool_calling chat with tool_choice 'required'",
        passes="one get_weather call valid against its schema naming C, finish_reason tool_calls",
    ),
    CapabilitySpec(
        "tool_choice_named",
        "tool_choice named",
        requires=TOOLS,
        sent="'I am flying to C tomorrow.' with get_weather and get_time, tool_choice naming "
        "one of them (drawn per run)",
        passes="one call to the named tool, valid against its schema, naming C",
    ),
    CapabilitySpec(
        "tool_selection",
        "Tool selection",
        requires=TOOLS,
        sent="'What time is it in C?' with get_weather and get_time (C drawn per run)",
        passes="one get_time call valid against its schema naming C",
    ),
    CapabilitySpec(
        "no_call",
        "No needless call",
        requires=TOOLS,
        sent="'Count to N.' with get_weather offered (N drawn per run)",
        passes="the exact count in prose, no tool call, no markup",
    ),
    CapabilitySpec(
        "parallel_tool_calls",
        "Parallel tool calls",
        requires=TOOLS,
        sent="'What is the weather in A and B?' with get_weather (the pair drawn per run)",
        passes="two get_weather calls, one per city in any order, each valid against its schema",
    ),
    CapabilitySpec(
        "thinking",
        "Thinking",
        requires=("thinking",),
        sent="'What is 23 * 47? Think step by step.' streamed and not",
        passes="reasoning in its own field, a final answer holding 1081, no markup; the "
        "streamed answer agrees",
    ),
    CapabilitySpec(
        "structured_output",
        "Structured output",
        sent="'Give the city C and the number of letters in its name as JSON...' with "
        "response_format json_object, then json_schema (C drawn per run)",
        passes="each answer parses as JSON, fits the schema {city: string, letters: integer} "
        "and holds C and its letter count",
    ),
    CapabilitySpec(
        "stop",
        "Stop sequences",
        sent="'Count to 10.' with stop ', K' (K drawn per run): as a list non-streamed and "
        "streamed, and as a plain string",
        passes="each answer ends just before the stop text, which is absent; finish_reason stop",
    ),
    CapabilitySpec(
        "length",
        "max_tokens",
        sent="'Count to 10.' with max_tokens 3, streamed and not",
        passes="finish_reason length at once, at most 3 completion tokens, no hang",
    ),
    CapabilitySpec(
        "usage",
        "Token usage",
        sent="'Count to 10.' non-streamed, and streamed with stream_options.include_usage",
        passes="prompt, completion and total tokens present, total = prompt + completion, "
        "equal both ways",
    ),
    CapabilitySpec(
        "responses_api",
        "Responses API (Codex)",
        sent="with the openai client on /v1/responses: 'Count to N.', the weather question with "
        "get_weather, its function_call_output, the count streamed, '23 * 47' to think, and a "
        "model nobody serves",
        passes="the exact count; one get_weather call valid against its schema; prose using "
        "the result; streamed events assembling to the same count; a reasoning item and 1081 "
        "with no markup; a 4xx in OpenAI's error shape",
    ),
    CapabilitySpec(
        "messages_api",
        "Anthropic Messages (Claude Code)",
        sent="the same session with the anthropic client on /v1/messages (tool_use and "
        "tool_result blocks)",
        passes="as responses_api, with a tool_use block, a thinking block, and a 4xx in "
        "Anthropic's error shape",
    ),
    CapabilitySpec(
        "errors",
        "Unknown-model error",
        routes=(Route.PROXIED,),
        sent="a chat for a model nobody serves",
        passes="a 4xx in OpenAI's error shape",
    ),
    CapabilitySpec(
        "concurrency",
        "Concurrency",
        routes=(Route.PROXIED,),
        kind="stack",
        sent="four chats at once through LiteLLM",
        passes="every one answered right",
    ),
    CapabilitySpec(
        "model_listing",
        "Model listing",
        routes=(Route.PROXIED,),
        kind="stack",
        sent="GET /v1/models",
        passes="the tier name is listed",
    ),
    CapabilitySpec(
        "routing",
        "Routing",
        routes=(Route.PROXIED,),
        kind="stack",
        sent="a chat by tier name through LiteLLM",
        passes="the tier's own server answered",
    ),
):
    declare(_spec)
