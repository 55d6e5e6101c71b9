"""The shipped fixture models through the real vllm-mlx server and the real OpenAI client.

Each variant is served the way the stack serves it (hermes tool parser, qwen3 reasoning
parser, greedy decoding) by one vllm-mlx per module, started on first use and stopped at the
end, with no process left behind. ``tiny-chat`` must answer every built-in probe exactly;
each negative control must show its one defect and otherwise answer like ``tiny-chat``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import psutil
import pytest

from pytest_mlxstack import skip_no_mlx_backend, skip_no_openai, skip_no_vllm
from pytest_mlxstack.fixture_models import VARIANTS, fixture_model_path
from pytest_mlxstack.fixture_models.variants import (
    BAD_TOOL_SYNTAX,
    CALLS_ALWAYS,
    IGNORES_RESULTS,
    NEEDLESS_CALL,
    NO_THINK,
    NO_TOOLS,
    TINY_CHAT,
    bad_syntax_tool_call,
    ignored_result,
    is_tool_result,
    unrelated_to_tools,
)
from pytest_mlxstack.probe_prompts import (
    CITIES,
    COUNT_TARGETS,
    NO_CALL_COUNTS,
    THINKING,
    ProbeCase,
    ToolCallExpectation,
    all_cases,
    count_to,
    no_call,
    served_chat,
    weather,
    weather_result,
)
from pytest_mlxstack.probes.markup import think_markup, tool_markup
from pytest_mlxstack.process.ports import PortAllocator
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.stack.servers import ServerKey, start_server

pytestmark = [skip_no_vllm, skip_no_mlx_backend, skip_no_openai]

SERVE_FLAGS = (
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "hermes",
    "--reasoning-parser",
    "qwen3",
)
MAX_TOKENS = 96  # the longest answer (the reasoning) is about 50 tokens
NEGATIVE_CONTROLS = [
    NO_TOOLS.name,
    BAD_TOOL_SYNTAX.name,
    NO_THINK.name,
    CALLS_ALWAYS.name,
    IGNORES_RESULTS.name,
]


def refused_here(case: ProbeCase) -> bool:
    """vllm-mlx 0.6.0 answers json_schema with HTTP 500 off macOS (llguidance needs Metal): a
    server fault the fixture model is not shaped around (the build checks its answer)."""
    response_format = case.extra.get("response_format") or {}
    return response_format.get("type") == "json_schema" and sys.platform != "darwin"


@dataclass(frozen=True)
class Expected:
    """What the client must see: parsed fields, after the server's parsers."""

    content: str | None
    reasoning: str | None = None
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    finish_reason: str = "stop"


def _calls(*calls: ToolCallExpectation) -> Expected:
    return Expected(None, None, tuple((c.name, c.arguments) for c in calls), "tool_calls")


def expected_from_probe(case: ProbeCase) -> Expected:
    """The full model's answer: exactly what the probe case says."""
    if case.expected_tool_calls:
        return _calls(*case.expected_tool_calls)
    return Expected(case.expected_content, case.expected_reasoning)


def expected_for(variant: str, case: ProbeCase) -> Expected:
    """Each negative control breaks one behaviour; every other answer is the full model's."""
    calls = case.expected_tool_calls
    if variant == NO_TOOLS.name and calls:
        city = next(iter(calls[0].arguments.values()))
        return Expected(weather(city, with_tools=False).expected_content)
    if variant == BAD_TOOL_SYNTAX.name and calls:
        return Expected("".join(bad_syntax_tool_call(call) for call in calls))
    if variant == NO_THINK.name and case.key == THINKING.key:
        return Expected(THINKING.expected_content)
    if variant == CALLS_ALWAYS.name and unrelated_to_tools(case):
        return _calls(NEEDLESS_CALL)
    if variant == IGNORES_RESULTS.name and is_tool_result(case):
        return Expected(ignored_result(case))
    return expected_from_probe(case)


def reasoning_of(message: Any) -> str | None:
    """vllm-mlx puts the parsed reasoning in an extra field the OpenAI types do not declare."""
    extra = message.model_extra or {}
    value = extra.get("reasoning_content") or extra.get("reasoning")
    return str(value) if value else None


class Servers:
    """One vllm-mlx per variant, started on first use, all stopped with the manager."""

    def __init__(self, manager: ServiceManager) -> None:
        self.manager = manager
        self.clients: dict[str, openai.OpenAI] = {}
        self.pids: list[int] = []
        self.ports: list[int] = []

    def client(self, variant: str) -> openai.OpenAI:
        if variant not in self.clients:
            key = ServerKey(fixture_model_path(variant), variant, tuple(SERVE_FLAGS), None)
            home = self.manager.home / "homes" / variant
            service = start_server(self.manager, variant, key, 600, home, {})
            self.pids.append(service.pid)
            self.ports.append(service.port)
            self.clients[variant] = openai.OpenAI(
                base_url=f"{service.url}/v1", api_key="unused", max_retries=0, timeout=60
            )
        return self.clients[variant]

    def ask(self, variant: str, case: ProbeCase, **extra: Any) -> Any:
        params: dict[str, Any] = {"temperature": 0, "max_tokens": MAX_TOKENS}
        if case.tools:
            params["tools"] = case.tools
        params.update(case.extra)
        params.update(extra)
        return self.client(variant).chat.completions.create(
            model=variant,
            messages=case.messages,  # type: ignore[arg-type]
            **params,
        )


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, port_allocator: PortAllocator
) -> Iterator[Servers]:
    home: Path = tmp_path_factory.mktemp("fixture-model-servers")
    with ServiceManager(home, port_allocator=port_allocator, grace_period=5.0) as manager:
        started = Servers(manager)
        yield started
        for client in started.clients.values():
            client.close()
    left = [pid for pid in started.pids if _alive(pid)]
    assert not left, f"vllm-mlx processes {left} outlived the module"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_answer(response: Any, expected: Expected) -> None:
    choice = response.choices[0]
    message = choice.message
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
    assert calls == list(expected.tool_calls)
    assert message.content == expected.content
    assert reasoning_of(message) == expected.reasoning
    assert choice.finish_reason == expected.finish_reason


# -- the full model --------------------------------------------------------------------------


def ask_for(servers: Servers, variant: str, case: ProbeCase) -> Any:
    """The answer, or the server's own HTTP 500 where it cannot serve the request here."""
    if refused_here(case):
        # A pool of its own: vllm-mlx drops the connection of the failed request.
        own = servers.client(variant).copy(http_client=openai.DefaultHttpxClient())
        with own, pytest.raises(openai.InternalServerError):
            own.chat.completions.create(
                model=variant,
                messages=case.messages,  # type: ignore[arg-type]
                max_tokens=MAX_TOKENS,
                **case.extra,
            )
        return None
    return servers.ask(variant, case)


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.key)
def test_tiny_chat_answers_every_probe_exactly(servers: Servers, case: ProbeCase) -> None:
    response = ask_for(servers, TINY_CHAT.name, case)
    if response is not None:
        assert_answer(response, expected_from_probe(case))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """The tokenizer exactly as the build loaded it to render the training chats."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(fixture_model_path(TINY_CHAT.name))


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.key)
def test_server_prompt_is_as_long_as_the_trained_prompt(
    servers: Servers, tokenizer: Any, case: ProbeCase
) -> None:
    # vllm-mlx renders and tokenizes the chat itself (its own tool conversion, message
    # normalisation and injected instructions); a different prompt than the build rendered
    # would show up here first.
    if refused_here(case):
        pytest.skip("vllm-mlx answers this request with HTTP 500 here")
    messages, tools = served_chat(case)
    params: dict[str, Any] = {"tools": tools} if tools else {}
    trained = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **params
    )
    response = servers.ask(TINY_CHAT.name, case, max_tokens=1)
    assert response.usage.prompt_tokens == len(tokenizer.encode(trained, add_special_tokens=False))


def test_tiny_chat_tool_call_arguments_are_exactly_the_city(servers: Servers) -> None:
    response = servers.ask(TINY_CHAT.name, weather("Tokyo"))
    (call,) = response.choices[0].message.tool_calls
    assert call.type == "function"
    assert call.id  # a call id the client can answer with a tool message
    assert json.loads(call.function.arguments) == {"location": "Tokyo"}


@pytest.mark.parametrize("n", COUNT_TARGETS)
def test_tiny_chat_streams_the_count_as_content(servers: Servers, n: int) -> None:
    stream = servers.ask(TINY_CHAT.name, count_to(n), stream=True)
    content: list[str] = []
    reasoning: list[str] = []
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            content.append(delta.content)
        if reasoning_of(delta):
            reasoning.append(str(reasoning_of(delta)))
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(content) == ", ".join(str(i) for i in range(1, n + 1))
    assert len(content) >= n  # arrives number by number, not in one piece
    assert reasoning == []
    assert finish == "stop"


def test_tiny_chat_streams_its_tool_call(servers: Servers) -> None:
    stream = servers.ask(TINY_CHAT.name, weather("Lima"), stream=True)
    names, arguments, finish = [], [], None
    for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            names.append(call.function.name or "")
            arguments.append(call.function.arguments or "")
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(names) == "get_weather"
    assert json.loads("".join(arguments)) == {"location": "Lima"}
    assert finish == "tool_calls"


# -- the negative controls -------------------------------------------------------------------


@pytest.mark.parametrize("city", CITIES)
def test_no_tools_answers_the_tool_question_in_prose(servers: Servers, city: str) -> None:
    response = servers.ask(NO_TOOLS.name, weather(city))
    message = response.choices[0].message
    assert message.tool_calls in (None, [])
    assert message.content == weather(city, with_tools=False).expected_content
    assert tool_markup(message.content, ["get_weather"]) == []  # prose, not unparsed markup
    assert response.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("city", CITIES)
def test_bad_tool_syntax_leaves_the_call_in_content(servers: Servers, city: str) -> None:
    response = servers.ask(BAD_TOOL_SYNTAX.name, weather(city))
    message = response.choices[0].message
    assert message.tool_calls in (None, [])
    assert message.content == f'[TOOL_CALLS]get_weather[ARGS]{{"location": "{city}"}}'
    # The probes tell "the parser missed it" from "the model never called" by this markup.
    assert "[TOOL_CALLS]" in tool_markup(message.content, ["get_weather"])
    assert response.choices[0].finish_reason == "stop"


def test_no_think_answers_without_reasoning(servers: Servers) -> None:
    response = servers.ask(NO_THINK.name, THINKING)
    message = response.choices[0].message
    assert reasoning_of(message) is None
    assert message.content == THINKING.expected_content
    assert think_markup(message.content) == []  # no reasoning hidden in content either


def unaffected_cases() -> list[Any]:
    """Every (negative control, case) where the control must answer like the full model."""
    return [
        pytest.param(variant, case, id=f"{variant}-{case.key}")
        for variant in NEGATIVE_CONTROLS
        for case in all_cases()
        if expected_for(variant, case) == expected_from_probe(case)
    ]


@pytest.mark.parametrize(("variant", "case"), unaffected_cases())
def test_negative_control_is_otherwise_the_full_model(
    servers: Servers, variant: str, case: ProbeCase
) -> None:
    response = ask_for(servers, variant, case)
    if response is not None:
        assert_answer(response, expected_from_probe(case))


@pytest.mark.parametrize("n", NO_CALL_COUNTS)
def test_calls_always_calls_a_tool_to_count(servers: Servers, n: int) -> None:
    response = servers.ask(CALLS_ALWAYS.name, no_call(n))
    assert_answer(response, _calls(NEEDLESS_CALL))
    # Without tools it counts like tiny-chat: the defect is the needless call only.
    assert_answer(servers.ask(CALLS_ALWAYS.name, count_to(n)), expected_from_probe(count_to(n)))


@pytest.mark.parametrize("city", CITIES)
def test_ignores_results_answers_without_the_result(servers: Servers, city: str) -> None:
    case = weather_result(city)
    response = servers.ask(IGNORES_RESULTS.name, case)
    message = response.choices[0].message
    assert message.tool_calls in (None, [])
    assert message.content == f"I hope you have a lovely day in {city}."
    assert "21" not in message.content
    assert response.choices[0].finish_reason == "stop"


def test_served_chat_is_what_vllm_mlx_injects() -> None:
    """The build trains on ``served_chat``: it must equal vllm-mlx's own prompt changes for a
    forced tool_choice and a response_format (with a reasoning parser, as served here)."""
    server = pytest.importorskip("vllm_mlx.server")
    tool_calling = pytest.importorskip("vllm_mlx.api.tool_calling")
    checked = 0
    for case in all_cases():
        if not case.extra:
            continue
        messages = [dict(m) for m in case.messages]
        tools = case.tools
        response_format = case.extra.get("response_format")
        if response_format:
            instruction = tool_calling.build_json_system_prompt(
                response_format, thinking_model=True
            )
            messages = server._inject_json_instruction(messages, instruction)
        if tools:
            tools, messages = server._apply_forced_tool_choice(
                case.extra.get("tool_choice"), tools, messages, {}
            )
        assert served_chat(case) == (messages, tools), case.key
        checked += 1
    assert checked >= 12


def test_every_variant_is_tested() -> None:
    assert set(VARIANTS) == {TINY_CHAT.name, *NEGATIVE_CONTROLS}
