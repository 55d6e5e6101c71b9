"""The shipped fixture models through the real vllm-mlx server and the real OpenAI client.

Each variant is served the way the stack serves it (hermes tool parser, qwen3 reasoning
parser, greedy decoding) by one vllm-mlx per module, started on first use and stopped at the
end, with no process left behind. ``tiny-chat`` must answer every built-in probe exactly;
each negative control must show its one defect and otherwise answer like ``tiny-chat``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import psutil
import pytest

from pytest_mlxstack import skip_no_mlx_backend, skip_no_openai, skip_no_vllm
from pytest_mlxstack.fixture_models import VARIANTS, fixture_model_path
from pytest_mlxstack.fixture_models.variants import BAD_TOOL_SYNTAX, NO_THINK, NO_TOOLS, TINY_CHAT
from pytest_mlxstack.probe_prompts import (
    CITIES,
    COUNT_TARGETS,
    THINKING,
    ProbeCase,
    all_cases,
    count_to,
    weather,
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
NEGATIVE_CONTROLS = [NO_TOOLS.name, BAD_TOOL_SYNTAX.name, NO_THINK.name]


@dataclass(frozen=True)
class Expected:
    """What the client must see: parsed fields, after the server's parsers."""

    content: str | None
    reasoning: str | None = None
    tool_call: tuple[str, dict[str, Any]] | None = None
    finish_reason: str = "stop"


def expected_from_probe(case: ProbeCase) -> Expected:
    """The full model's answer: exactly what the probe case says."""
    if case.expected_tool_call is not None:
        call = case.expected_tool_call
        return Expected(None, None, (call.name, call.arguments), "tool_calls")
    return Expected(case.expected_content, case.expected_reasoning)


def expected_for(variant: str, case: ProbeCase) -> Expected:
    """Each negative control breaks one behaviour; every other answer is the full model's."""
    call = case.expected_tool_call
    if variant == NO_TOOLS.name and call is not None:
        city = call.arguments["location"]
        return Expected(weather(city, with_tools=False).expected_content)
    if variant == BAD_TOOL_SYNTAX.name and call is not None:
        return Expected(
            f'[TOOL_CALLS]get_weather[ARGS]{{"location": "{call.arguments["location"]}"}}'
        )
    if variant == NO_THINK.name and case.key == THINKING.key:
        return Expected(THINKING.expected_content)
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
    if expected.tool_call is None:
        assert message.tool_calls in (None, [])
    else:
        assert message.tool_calls is not None
        assert len(message.tool_calls) == 1
        call = message.tool_calls[0]
        name, arguments = expected.tool_call
        assert call.function.name == name
        assert json.loads(call.function.arguments) == arguments
    assert message.content == expected.content
    assert reasoning_of(message) == expected.reasoning
    assert choice.finish_reason == expected.finish_reason


# -- the full model --------------------------------------------------------------------------


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.key)
def test_tiny_chat_answers_every_probe_exactly(servers: Servers, case: ProbeCase) -> None:
    assert_answer(servers.ask(TINY_CHAT.name, case), expected_from_probe(case))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """The tokenizer exactly as the build loaded it to render the training chats."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(fixture_model_path(TINY_CHAT.name))


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.key)
def test_server_prompt_is_as_long_as_the_trained_prompt(
    servers: Servers, tokenizer: Any, case: ProbeCase
) -> None:
    # vllm-mlx renders and tokenizes the chat itself (its own tool conversion and message
    # normalisation); a different prompt than the build rendered would show up here first.
    params: dict[str, Any] = {"tools": case.tools} if case.tools else {}
    trained = tokenizer.apply_chat_template(
        case.messages, tokenize=False, add_generation_prompt=True, **params
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
    assert_answer(servers.ask(variant, case), expected_from_probe(case))


def test_every_variant_is_tested() -> None:
    assert set(VARIANTS) == {TINY_CHAT.name, *NEGATIVE_CONTROLS}
