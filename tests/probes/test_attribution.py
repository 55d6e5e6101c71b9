"""Every attribution, reached over real HTTP through the real ``openai`` client.

The crafted server produces the failure modes; the probes must name the right culprit, and a
good answer must pass (otherwise a probe that always failed would look attributed).
"""

from __future__ import annotations

import socket

import openai
import pytest
from crafted_server import CITY, CraftedServer

from pytest_mlxstack.matrix.verdicts import Attribution, Verdict
from pytest_mlxstack.probes import (
    probe_errors,
    probe_inference,
    probe_multi_turn,
    probe_streaming,
    probe_system_prompt,
    probe_thinking,
    probe_tool_calling,
    probe_tool_calling_streaming,
)

FAST = {"timeout": 5.0}


@pytest.mark.parametrize(
    ("scenario", "attribution", "reason_part"),
    [
        ("prose", Attribution.MODEL, "answered in prose"),
        ("tool-markup", Attribution.PARSER, "'<tool_call>'"),
        ("mistral-markup", Attribution.PARSER, "'[TOOL_CALLS]'"),
        ("json-markup", Attribution.PARSER, '"name": "get_weather"'),
        ("markup-in-reasoning", Attribution.PARSER, "ended up in the reasoning"),
        ("bad-args", Attribution.PARSER, "not JSON"),
        ("missing-key", Attribution.MODEL, "lacks the required key 'location'"),
        ("bad-enum", Attribution.MODEL, "'kelvin', not one of 'celsius', 'fahrenheit'"),
        ("wrong-city", Attribution.MODEL, "location 'Tokyo'"),
        ("wrong-finish", Attribution.PARSER, "finish_reason is 'stop'"),
        ("wrong-tool", Attribution.MODEL, "called 'get_time'"),
        ("server-error", Attribution.SERVER_ERROR, "HTTP 500"),
        ("close", Attribution.SERVER_DOWN, "connection failed"),
        ("not-json", Attribution.CLIENT, "openai client could not handle"),
    ],
)
def test_tool_calling_failures_are_attributed(
    client: openai.OpenAI, scenario: str, attribution: Attribution, reason_part: str
) -> None:
    result = probe_tool_calling(client, scenario, **FAST)
    assert result.verdict is Verdict.FAIL
    assert result.attribution is attribution, result.reason
    assert reason_part in result.reason


def test_a_good_tool_call_passes_with_evidence(client: openai.OpenAI) -> None:
    result = probe_tool_calling(client, "good-tool", **FAST)
    assert result.verdict is Verdict.PASS, result.reason
    assert result.attribution is None
    evidence = result.evidence
    assert evidence.request["tools"] == ["get_weather"]
    assert evidence.request["temperature"] == 0
    assert evidence.request["messages"][0]["content"] == f"What is the weather in {CITY}?"
    assert evidence.response["status"] == 200
    assert evidence.response["tool_calls"] == [
        {"name": "get_weather", "arguments": '{"location": "Paris"}'}
    ]
    assert evidence.response["finish_reason"] == "tool_calls"
    assert (evidence.prompt_tokens, evidence.completion_tokens) == (11, 7)
    assert evidence.duration_s is not None


def test_the_markup_itself_is_kept_as_evidence(client: openai.OpenAI) -> None:
    result = probe_tool_calling(client, "tool-markup", **FAST)
    assert result.evidence.response["content"].startswith("<tool_call>")


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution"),
    [
        ("good-tool", Verdict.PASS, None),
        ("prose", Verdict.FAIL, Attribution.MODEL),
        ("tool-markup", Verdict.FAIL, Attribution.PARSER),
        ("stream-args-differ", Verdict.FAIL, Attribution.PARSER),
    ],
)
def test_streamed_tool_calls_are_assembled_and_compared(
    client: openai.OpenAI, scenario: str, verdict: Verdict, attribution: Attribution | None
) -> None:
    result = probe_tool_calling_streaming(client, scenario, **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    streamed = result.evidence.response["streamed"]
    assert "non_streamed" in result.evidence.response
    if scenario == "good-tool":
        assert streamed["tool_calls"] == [
            {"name": "get_weather", "arguments": '{"location": "Paris"}'}
        ]
        assert streamed["finish_reason"] == "tool_calls"
    if scenario == "stream-args-differ":
        assert "Paris, France" in result.reason


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("thinks", Verdict.PASS, None, ""),
        ("thinks-reasoning-key", Verdict.PASS, None, ""),
        ("think-markup", Verdict.FAIL, Attribution.PARSER, "'<think>'"),
        ("no-think", Verdict.FAIL, Attribution.MODEL, "without reasoning"),
        ("thinks-no-answer", Verdict.FAIL, Attribution.MODEL, "stopped at max_tokens"),
    ],
)
def test_thinking(
    client: openai.OpenAI,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_thinking(client, scenario, **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    if verdict is Verdict.PASS:
        assert result.evidence.response["reasoning"] == "23 * 47 = 1081."
        assert result.evidence.response["content"] == "The answer is 1081."


def test_the_reasoning_field_name_is_recorded(client: openai.OpenAI) -> None:
    assert probe_thinking(client, "thinks", **FAST).evidence.response["reasoning_field"] == (
        "reasoning_content"
    )
    other = probe_thinking(client, "thinks-reasoning-key", **FAST)
    assert other.evidence.response["reasoning_field"] == "reasoning"


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("count", Verdict.PASS, None, ""),
        ("count-one-chunk", Verdict.FAIL, Attribution.SERVER_ERROR, "1 content chunk"),
        ("count-differs", Verdict.FAIL, Attribution.SERVER_ERROR, "differs from the non-streamed"),
        ("stream-error-event", Verdict.FAIL, Attribution.SERVER_ERROR, "generation crashed"),
        ("stream-cut", Verdict.FAIL, Attribution.SERVER_DOWN, "connection failed"),
        ("empty", Verdict.FAIL, Attribution.MODEL, "no text"),
        ("count-as-reasoning", Verdict.FAIL, Attribution.PARSER, "arrived as reasoning"),
    ],
)
def test_streaming(
    client: openai.OpenAI,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_streaming(client, scenario, **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    if verdict is Verdict.PASS:
        streamed = result.evidence.response["streamed"]
        assert streamed["content"] == "1, 2, 3, 4, 5"
        assert streamed["content_chunks"] == 5
        assert result.evidence.response["non_streamed"]["content"] == "1, 2, 3, 4, 5"
        assert result.evidence.prompt_tokens == 11  # from the include_usage chunk


def test_a_hanging_server_is_a_timeout_not_a_hang(client: openai.OpenAI) -> None:
    result = probe_inference(client, "hang", timeout=0.5)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.TIMEOUT)
    assert "no answer within 0.5 s" in result.reason


def test_no_retries_hide_a_server_error(client: openai.OpenAI, crafted: CraftedServer) -> None:
    before = len(crafted.requests)
    probe_inference(client, "server-error", **FAST)
    assert len(crafted.requests) == before + 1


def test_connection_refused_is_server_down() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x")
    result = probe_inference(client, "anything", **FAST)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.SERVER_DOWN)
    assert "ConnectError" in result.reason


def test_text_probes_judge_the_content(client: openai.OpenAI) -> None:
    assert probe_inference(client, "hello", **FAST).verdict is Verdict.PASS
    assert probe_system_prompt(client, "pirate", **FAST).verdict is Verdict.PASS
    ignored = probe_system_prompt(client, "hello", **FAST)
    assert (ignored.verdict, ignored.attribution) == (Verdict.FAIL, Attribution.MODEL)
    assert "ignores the system message" in ignored.reason
    empty = probe_inference(client, "empty", **FAST)
    assert (empty.verdict, empty.attribution) == (Verdict.FAIL, Attribution.MODEL)
    thinking_only = probe_inference(client, "length-empty", **FAST)
    assert "all of it reasoning" in thinking_only.reason


def test_multi_turn_needs_the_name_from_the_history(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    forgot = probe_multi_turn(client, "hello", **FAST)
    assert (forgot.verdict, forgot.attribution) == (Verdict.FAIL, Attribution.MODEL)
    assert "'Alice'" in forgot.reason
    sent = crafted.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "Alice" in sent[0]["content"]


@pytest.mark.parametrize(
    ("answer", "verdict", "attribution", "reason_part"),
    [
        ("openai-400", Verdict.PASS, None, ""),
        ("detail-404", Verdict.FAIL, Attribution.SERVER_ERROR, "not in the OpenAI error shape"),
        ("server-error", Verdict.FAIL, Attribution.SERVER_ERROR, "HTTP 500"),
        ("answers-anything", Verdict.FAIL, Attribution.SERVER_ERROR, "instead of a 4xx"),
        ("hang", Verdict.FAIL, Attribution.TIMEOUT, "no answer within"),
    ],
)
def test_errors_probe(
    client: openai.OpenAI,
    answer: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_errors(client, "served-model", unknown_model=answer, timeout=0.5)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    if answer == "openai-400":
        assert result.evidence.response["status"] == 400
        assert "Invalid model name" in result.evidence.response["body"]
