"""The built-in probe prompts and the exact answers the fixture model was trained to give.

One source of truth shared by the fixture-model builder (which trains on these chats) and the
capability probes (which send them and judge the answers). Real models are judged on the shape
of their answers (a tool call, reasoning present, the history used), never on these exact
strings; the exact strings only make the fixture model's verdicts deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}

CITIES = ("Paris", "Tokyo", "Berlin", "Lima", "Cairo", "Oslo", "Sydney", "Toronto")
NAMES = ("Alice", "Bob", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana")
COUNT_TARGETS = (3, 4, 5, 6, 7, 8, 9, 10)


@dataclass(frozen=True)
class ToolCallExpectation:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ProbeCase:
    """A chat sent to the model and what the fully capable fixture model answers."""

    key: str
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    expected_content: str | None = None
    expected_reasoning: str | None = None
    expected_tool_call: ToolCallExpectation | None = None
    must_contain: tuple[str, ...] = field(default=())


GREETING = ProbeCase(
    key="greeting",
    messages=[{"role": "user", "content": "Say hello."}],
    expected_content="Hello! How can I help you today?",
    must_contain=("hello",),
)

SYSTEM_PROMPT = ProbeCase(
    key="system_prompt",
    messages=[
        {"role": "system", "content": "You are a pirate. Always answer like a pirate."},
        {"role": "user", "content": "Say hello."},
    ],
    expected_content="Ahoy, matey! What be ye needing?",
    must_contain=("ahoy",),
)

THINKING = ProbeCase(
    key="thinking",
    messages=[{"role": "user", "content": "What is 23 * 47? Think step by step."}],
    expected_reasoning="23 * 47 = 23 * 40 + 23 * 7 = 920 + 161 = 1081.",
    expected_content="The answer is 1081.",
    must_contain=("1081",),
)


def weather(city: str, *, with_tools: bool = True) -> ProbeCase:
    """A weather question; with the tool offered, the answer is a ``get_weather`` call."""
    messages: list[Message] = [{"role": "user", "content": f"What is the weather in {city}?"}]
    if with_tools:
        return ProbeCase(
            key=f"weather[{city}]",
            messages=messages,
            tools=[WEATHER_TOOL],
            expected_tool_call=ToolCallExpectation("get_weather", {"location": city}),
        )
    return ProbeCase(
        key=f"weather-no-tools[{city}]",
        messages=messages,
        expected_content=f"I cannot check live weather, but I hope it is pleasant in {city}.",
        must_contain=(city,),
    )


def weather_result(city: str) -> ProbeCase:
    """The turn after a tool call: the model reads the tool's result back to the user."""
    call_id = "call_0"
    return ProbeCase(
        key=f"weather-result[{city}]",
        messages=[
            {"role": "user", "content": f"What is the weather in {city}?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": f'{{"location": "{city}"}}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 celsius"},
        ],
        tools=[WEATHER_TOOL],
        expected_content=f"It is sunny and 21 degrees Celsius in {city}.",
        must_contain=(city, "21"),
    )


def multi_turn(name: str) -> ProbeCase:
    """The answer can only be right if the model read the earlier turns."""
    return ProbeCase(
        key=f"multi_turn[{name}]",
        messages=[
            {"role": "user", "content": f"My name is {name}."},
            {"role": "assistant", "content": f"Nice to meet you, {name}!"},
            {"role": "user", "content": "What is my name?"},
        ],
        expected_content=f"Your name is {name}.",
        must_contain=(name,),
    )


def count_to(n: int) -> ProbeCase:
    """Long enough to arrive in several streamed chunks."""
    numbers = ", ".join(str(i) for i in range(1, n + 1))
    return ProbeCase(
        key=f"count[{n}]",
        messages=[{"role": "user", "content": f"Count to {n}."}],
        expected_content=numbers,
        must_contain=(numbers,),
    )


def all_cases() -> list[ProbeCase]:
    """Every chat the fixture model is trained on, in a stable order."""
    cases = [GREETING, SYSTEM_PROMPT, THINKING]
    for city in CITIES:
        cases += [weather(city), weather(city, with_tools=False), weather_result(city)]
    cases += [multi_turn(name) for name in NAMES]
    cases += [count_to(n) for n in COUNT_TARGETS]
    return cases
