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

from pytest_mlxstack.probe_prompts import THINKING, ProbeCase, ToolCallExpectation, weather


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

VARIANTS: dict[str, Variant] = {
    variant.name: variant for variant in (TINY_CHAT, NO_TOOLS, BAD_TOOL_SYNTAX, NO_THINK)
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
    """The raw text ``tiny-chat`` generates for ``case`` (before the server's parsers)."""
    if case.expected_tool_call is not None:
        return EMPTY_THINK + hermes_tool_call(case.expected_tool_call)
    content = case.expected_content or ""
    if case.expected_reasoning is not None:
        return f"<think>{case.expected_reasoning}</think>{content}"
    return EMPTY_THINK + content


def model_output(variant: str, case: ProbeCase) -> str:
    """The raw text ``variant`` is trained to generate for ``case``."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown fixture model variant {variant!r}; use one of {list(VARIANTS)}")
    call = case.expected_tool_call
    if call is not None and variant == NO_TOOLS.name:
        city = str(call.arguments["location"])
        return EMPTY_THINK + (weather(city, with_tools=False).expected_content or "")
    if call is not None and variant == BAD_TOOL_SYNTAX.name:
        return EMPTY_THINK + bad_syntax_tool_call(call)
    if case.key == THINKING.key and variant == NO_THINK.name:
        return EMPTY_THINK + (THINKING.expected_content or "")
    return full_model_output(case)
