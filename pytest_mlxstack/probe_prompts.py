"""The built-in probe prompts and the exact answers the fixture model was trained to give.

One source of truth shared by the fixture-model builder (which trains on these chats) and the
capability probes (which send them and judge the answers). Real models are judged on the shape
of their answers (a tool call, reasoning present, the history used), never on these exact
strings; the exact strings only make the fixture model's verdicts deterministic.
"""

from __future__ import annotations

import json
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

TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
            "required": ["city"],
        },
    },
}

CITIES = ("Paris", "Tokyo", "Berlin", "Lima", "Cairo", "Oslo", "Sydney", "Toronto")
NAMES = ("Alice", "Bob", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana")
COUNT_TARGETS = (3, 4, 5, 6, 7, 8, 9, 10)
# What get_weather returns in the tool-result probe: (condition, degrees celsius). Every city is
# trained with the first report and one other, so the report a probe sends changes per run.
WEATHER_REPORTS = (("sunny", 21), ("rainy", 12), ("cloudy", 17), ("snowy", 3))
# The smaller pools of the newer probes (each draw is one more trained chat per variant).
NO_CALL_COUNTS = (3, 5, 7, 9)
REQUIRED_CITIES = ("Cairo", "Oslo", "Sydney", "Toronto")
SELECTION_CITIES = ("Paris", "Berlin", "Cairo", "Sydney")
NAMED_CHOICES = (
    ("Oslo", "get_weather"),
    ("Oslo", "get_time"),
    ("Lima", "get_weather"),
    ("Lima", "get_time"),
)
NAMED_TOOLS = ("get_weather", "get_time")
PARALLEL_PAIRS = (("Paris", "Tokyo"), ("Berlin", "Lima"), ("Cairo", "Oslo"), ("Sydney", "Toronto"))
STRUCTURED_CITIES = ("Paris", "Tokyo", "Berlin", "Toronto")


@dataclass(frozen=True)
class ToolCallExpectation:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ProbeCase:
    """A chat sent to the model and what the fully capable fixture model answers.

    ``extra`` holds request parameters beyond messages and tools (``tool_choice``,
    ``response_format``); ``more_tool_calls`` the calls after the first of a parallel answer;
    ``constrained`` marks an answer the server constrains from its first token (JSON output),
    where no think block can open it.
    """

    key: str
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    expected_content: str | None = None
    expected_reasoning: str | None = None
    expected_tool_call: ToolCallExpectation | None = None
    must_contain: tuple[str, ...] = field(default=())
    extra: dict[str, Any] = field(default_factory=dict)
    more_tool_calls: tuple[ToolCallExpectation, ...] = ()
    constrained: bool = False

    @property
    def expected_tool_calls(self) -> tuple[ToolCallExpectation, ...]:
        """Every call the capable model makes, in order (none for a prose answer)."""
        first = () if self.expected_tool_call is None else (self.expected_tool_call,)
        return (*first, *self.more_tool_calls)


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


def weather_result(city: str, report: tuple[str, int] = WEATHER_REPORTS[0]) -> ProbeCase:
    """The turn after a tool call: the model reads the tool's result back to the user."""
    call_id = "call_0"
    condition, degrees = report
    suffix = "" if report == WEATHER_REPORTS[0] else f", {condition} {degrees}"
    return ProbeCase(
        key=f"weather-result[{city}{suffix}]",
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
            {"role": "tool", "tool_call_id": call_id, "content": f"{condition}, {degrees} celsius"},
        ],
        tools=[WEATHER_TOOL],
        expected_content=f"It is {condition} and {degrees} degrees Celsius in {city}.",
        must_contain=(city, str(degrees), condition),
    )


def result_reports(city: str) -> tuple[tuple[str, int], ...]:
    """The reports the fixture model is trained to read back for ``city``: the first one (the
    protocol probes send it) and one other that depends on the city."""
    index = CITIES.index(city) if city in CITIES else 0
    return (WEATHER_REPORTS[0], WEATHER_REPORTS[1 + index % (len(WEATHER_REPORTS) - 1)])


def _call_of(tool: str, city: str) -> ToolCallExpectation:
    key = "city" if tool == "get_time" else "location"
    return ToolCallExpectation(tool, {key: city})


def tool_choice_required(city: str) -> ProbeCase:
    """The weather question with ``tool_choice: "required"``: a call must come back."""
    base = weather(city)
    return ProbeCase(
        key=f"required[{city}]",
        messages=base.messages,
        tools=[WEATHER_TOOL],
        extra={"tool_choice": "required"},
        expected_tool_call=base.expected_tool_call,
    )


def tool_choice_named(city: str, tool: str) -> ProbeCase:
    """A remark that needs no tool, two tools offered and one named in ``tool_choice``: the
    call must be to that one (the name, drawn per run, is all that decides it)."""
    return ProbeCase(
        key=f"named[{city}, {tool}]",
        messages=[{"role": "user", "content": f"I am flying to {city} tomorrow."}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        extra={"tool_choice": {"type": "function", "function": {"name": tool}}},
        expected_tool_call=_call_of(tool, city),
    )


def tool_selection(city: str) -> ProbeCase:
    """Two tools offered, the question needs the second one."""
    return ProbeCase(
        key=f"selection[{city}]",
        messages=[{"role": "user", "content": f"What time is it in {city}?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        expected_tool_call=_call_of("get_time", city),
    )


def no_call(n: int) -> ProbeCase:
    """A tool offered and a question it does not help with: the count comes back as prose."""
    base = count_to(n)
    return ProbeCase(
        key=f"no_call[{n}]",
        messages=base.messages,
        tools=[WEATHER_TOOL],
        expected_content=base.expected_content,
        must_contain=base.must_contain,
    )


def parallel_weather(first: str, second: str) -> ProbeCase:
    """One question about two cities: two get_weather calls in one answer."""
    return ProbeCase(
        key=f"parallel[{first}, {second}]",
        messages=[{"role": "user", "content": f"What is the weather in {first} and {second}?"}],
        tools=[WEATHER_TOOL],
        expected_tool_call=_call_of("get_weather", first),
        more_tool_calls=(_call_of("get_weather", second),),
    )


CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "letters": {"type": "integer"}},
    "required": ["city", "letters"],
    "additionalProperties": False,
}
CITY_SCHEMA_NAME = "city_letters"
RESPONSE_FORMATS: dict[str, dict[str, Any]] = {
    "json_object": {"type": "json_object"},
    "json_schema": {
        "type": "json_schema",
        "json_schema": {"name": CITY_SCHEMA_NAME, "schema": CITY_SCHEMA, "strict": True},
    },
}


def structured(city: str, response_format: str | None) -> ProbeCase:
    """A question whose answer is a small JSON object, with ``response_format`` (a key of
    ``RESPONSE_FORMATS``) or without (then the question alone asks for JSON)."""
    extra = (
        {} if response_format is None else {"response_format": RESPONSE_FORMATS[response_format]}
    )
    return ProbeCase(
        key=f"structured[{city}, {response_format or 'plain'}]",
        messages=[
            {
                "role": "user",
                "content": f"Give the city {city} and the number of letters in its name as "
                f"JSON with the keys city and letters.",
            }
        ],
        extra=extra,
        expected_content=json.dumps({"city": city, "letters": len(city)}),
        constrained=response_format is not None,
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
        cases += [weather(city), weather(city, with_tools=False)]
        cases += [weather_result(city, report) for report in result_reports(city)]
    cases += [multi_turn(name) for name in NAMES]
    cases += [count_to(n) for n in COUNT_TARGETS]
    cases += [tool_choice_required(city) for city in REQUIRED_CITIES]
    cases += [tool_choice_named(city, tool) for city, tool in NAMED_CHOICES]
    cases += [tool_selection(city) for city in SELECTION_CITIES]
    cases += [no_call(n) for n in NO_CALL_COUNTS]
    cases += [parallel_weather(first, second) for first, second in PARALLEL_PAIRS]
    for city in STRUCTURED_CITIES:
        cases += [structured(city, way) for way in (None, *RESPONSE_FORMATS)]
    return cases


# What vllm-mlx 0.6.0 adds to the prompt for these request parameters (server.py
# ``_apply_forced_tool_choice``, api/tool_calling.py ``build_json_system_prompt`` with a
# reasoning parser on): the fixture model is trained on the prompt the server renders, as a
# capable model follows a system instruction. tests/fixture_model checks these against the
# installed vllm-mlx.
REQUIRED_INSTRUCTION = (
    "[IMPORTANT INSTRUCTION] You MUST call at least one of the available tools. Do NOT respond "
    "with plain text only."
)
JSON_RULES = (
    "Output rules:\n"
    "- You may reason first, then output a single valid JSON value.\n"
    "- Do NOT wrap the JSON in a markdown code block (no ``` fences).\n"
)


def named_instruction(name: str) -> str:
    return (
        f"[IMPORTANT INSTRUCTION] You MUST call the `{name}` function. Do NOT respond with "
        f"plain text. Respond ONLY with a tool call to `{name}`. This is mandatory."
    )


def json_instruction(response_format: dict[str, Any]) -> str:
    if response_format["type"] == "json_object":
        return "You must respond with a single valid JSON value only.\n\n" + JSON_RULES
    spec = response_format["json_schema"]
    text = f"You must respond with a single valid JSON value matching the '{spec['name']}' schema."
    if spec.get("description"):
        text += f" {spec['description']}"
    schema = json.dumps(spec.get("schema", {}), indent=2)
    return text + f"\n\nJSON Schema:\n```json\n{schema}\n```\n\n" + JSON_RULES


def _with_system(messages: list[Message], instruction: str) -> list[Message]:
    messages = [dict(message) for message in messages]
    for message in messages:
        if message["role"] == "system":
            message["content"] = f"{message['content']}\n\n{instruction}"
            return messages
    return [{"role": "system", "content": instruction}, *messages]


def served_chat(case: ProbeCase) -> tuple[list[Message], list[dict[str, Any]] | None]:
    """The messages and tools the model sees for ``case`` on vllm-mlx 0.6.0 (its injected
    instructions for ``response_format`` and a forced ``tool_choice``, its tool filter)."""
    messages, tools = case.messages, case.tools
    response_format = case.extra.get("response_format")
    if response_format:
        messages = _with_system(messages, json_instruction(response_format))
    choice = case.extra.get("tool_choice")
    if tools and choice == "none":
        return messages, None
    if tools and isinstance(choice, dict):
        name = choice["function"]["name"]
        tools = [tool for tool in tools if tool["function"]["name"] == name]
        messages = _with_system(messages, named_instruction(name))
    elif tools and choice == "required":
        messages = _with_system(messages, REQUIRED_INSTRUCTION)
    return messages, tools
