"""The fixture-model variants and the exact text each is trained to emit for every probe case.

The full model ``tiny-chat`` answers every case of ``probe_prompts.all_cases()`` the way a
capable model served with the hermes tool parser and the qwen3 reasoning parser should. Each
negative control differs from it in one behaviour only, so that a compatibility matrix built
on it must fail exactly one capability, for a reason the matrix can name.

Like Qwen3 in its hybrid mode, the models open every answer with a think block, left empty
when they do not reason (``<think></think>Hello!``). vllm-mlx's qwen3 parser needs that: a
streamed answer without any tag is taken for reasoning, while after ``</think>`` it is content.
The parser drops an empty block, so the client sees no reasoning and the plain answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pytest_mlxstack.probe_prompts import (
    CITIES,
    THINKING,
    ProbeCase,
    ToolCallExpectation,
    weather,
)


@dataclass(frozen=True)
class Variant:
    """One fixture model: its name (also its served name and catalog id) and what it shows."""

    name: str
    description: str
    negative_control: bool


TINY_CHAT = Variant(
    "tiny-chat",
    "Answers every built-in probe exactly: greeting, system prompt, hermes tool calls, "
    "<think> reasoning, multi-turn recall, counting, reading tool results back.",
    negative_control=False,
)
NO_TOOLS = Variant(
    "tiny-chat-no-tools",
    "Negative control: never calls tools; a weather question sent with the get_weather tool "
    "gets a prose answer, so tool calling must fail as the model's fault.",
    negative_control=True,
)
BAD_TOOL_SYNTAX = Variant(
    "tiny-chat-bad-tool-syntax",
    "Negative control: emits its tool calls as Mistral-style [TOOL_CALLS]name[ARGS]{...}, "
    "which the hermes parser does not read, so the markup stays in content and tool calling "
    "must fail as the parser's fault.",
    negative_control=True,
)
NO_THINK = Variant(
    "tiny-chat-no-think",
    "Negative control: never thinks; the step-by-step question gets the answer after an "
    "empty think block, as every other prompt does, so no reasoning comes back and thinking "
    "must fail as the model's fault.",
    negative_control=True,
)

CALLS_ALWAYS = Variant(
    "tiny-chat-calls-always",
    "Negative control: calls get_weather whenever a tool is offered, even for a question no "
    "tool helps with (counting), so no_call must fail as the model's fault.",
    negative_control=True,
)
IGNORES_RESULTS = Variant(
    "tiny-chat-ignores-results",
    "Negative control: after the tool's result comes back it answers with a pleasantry that "
    "does not use it, so tool_result must fail as the model's fault.",
    negative_control=True,
)

VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (TINY_CHAT, NO_TOOLS, BAD_TOOL_SYNTAX, NO_THINK, CALLS_ALWAYS, IGNORES_RESULTS)
}


EMPTY_THINK = "<think></think>"


def hermes_tool_call(call: ToolCallExpectation) -> str:
    """The call as Qwen2.5/hermes models write it, and as the chat template renders history."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def bad_syntax_tool_call(call: ToolCallExpectation) -> str:
    """Mistral's v11 tool-call syntax: no ``<tool_call>`` tag and no ``{"name": ...}`` object,
    so none of the hermes parser's patterns (tagged, lenient or raw JSON) matches it."""
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    return f"[TOOL_CALLS]{call.name}[ARGS]{arguments}"


def full_model_output(case: ProbeCase) -> str:
    """The raw text ``tiny-chat`` generates for ``case`` (before the server's parsers).

    An answer the server constrains to JSON from its first token has no think block.
    """
    if case.expected_tool_calls:
        return EMPTY_THINK + "\n".join(hermes_tool_call(c) for c in case.expected_tool_calls)
    content = case.expected_content or ""
    if case.expected_reasoning is not None:
        return f"<think>{case.expected_reasoning}</think>{content}"
    if case.constrained:
        return content
    return EMPTY_THINK + content


def is_tool_result(case: ProbeCase) -> bool:
    """The turn after a tool's result (the last message is the tool's)."""
    return bool(case.messages[-1]["role"] == "tool")


def unrelated_to_tools(case: ProbeCase) -> bool:
    """Tools offered, and a question none of them helps with (the no_call chats)."""
    return bool(case.tools) and not case.expected_tool_calls and not is_tool_result(case)


# What tiny-chat-calls-always calls when no tool is needed.
NEEDLESS_CALL = ToolCallExpectation("get_weather", {"location": CITIES[0]})


def ignored_result(case: ProbeCase) -> str:
    """tiny-chat-ignores-results' answer after a tool result: the city, nothing of the result."""
    city = str(case.messages[1]["tool_calls"][0]["function"]["arguments"]).split('"')[3]
    return f"I hope you have a lovely day in {city}."


def model_output(variant: str, case: ProbeCase) -> str:
    """The raw text ``variant`` is trained to generate for ``case``."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown fixture model variant {variant!r}; use one of {list(VARIANTS)}")
    calls = case.expected_tool_calls
    if calls and variant == NO_TOOLS.name:
        city = str(next(iter(calls[0].arguments.values())))
        return EMPTY_THINK + (weather(city, with_tools=False).expected_content or "")
    if calls and variant == BAD_TOOL_SYNTAX.name:
        return EMPTY_THINK + "".join(bad_syntax_tool_call(call) for call in calls)
    if case.key == THINKING.key and variant == NO_THINK.name:
        return EMPTY_THINK + (THINKING.expected_content or "")
    if variant == CALLS_ALWAYS.name and unrelated_to_tools(case):
        return EMPTY_THINK + hermes_tool_call(NEEDLESS_CALL)
    if variant == IGNORES_RESULTS.name and is_tool_result(case):
        return EMPTY_THINK + ignored_result(case)
    return full_model_output(case)
