"""Every attribution, reached over real HTTP through the real ``openai`` client.

The crafted server produces the failure modes; the probes must name the right culprit, and a
good answer must pass (otherwise a probe that always failed would look attributed).
"""

from __future__ import annotations

import json
import socket

import openai
import pytest
from crafted_server import CITY, CraftedServer

from pytest_mlxstack import probe_prompts
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
from pytest_mlxstack.probes.parameters import probe_length, probe_stop, probe_usage
from pytest_mlxstack.probes.structured import probe_structured_output
from pytest_mlxstack.probes.tool_loop import probe_tool_choice_none, probe_tool_result
from pytest_mlxstack.probes.tool_use import (
    probe_no_call,
    probe_parallel_tool_calls,
    probe_tool_choice_named,
    probe_tool_choice_required,
    probe_tool_selection,
)

FAST = {"timeout": 5.0}
PARIS = {"timeout": 5.0, "city": CITY}


@pytest.mark.parametrize(
    ("scenario", "attribution", "reason_part"),
    [
        ("prose", Attribution.MODEL, "answered in prose"),
        ("tool-markup", Attribution.PARSER, "'<tool_call>'"),
        ("mistral-markup", Attribution.PARSER, "'[TOOL_CALLS]'"),
        ("broken-markup", Attribution.MODEL, "malformed tool call"),
        ("json-markup", Attribution.PARSER, '"name": "get_weather"'),
        ("markup-in-reasoning", Attribution.PARSER, "ended up in the reasoning"),
        ("bad-args", Attribution.PARSER, "not JSON"),
        ("missing-key", Attribution.MODEL, "lacks the required key 'location'"),
        ("bad-enum", Attribution.MODEL, "'kelvin', not one of 'celsius', 'fahrenheit'"),
        ("wrong-city", Attribution.MODEL, "location 'Tokyo'"),
        ("wrong-finish", Attribution.PARSER, "finish_reason is 'stop'"),
        ("wrong-tool", Attribution.MODEL, "called 'get_time'"),
        ("empty-args", Attribution.MODEL_OR_PARSER, "a client cannot tell which"),
        ("server-error", Attribution.SERVER_ERROR, "HTTP 500"),
        ("close", Attribution.SERVER_DOWN, "connection failed"),
        ("not-json", Attribution.CLIENT, "openai client could not handle"),
    ],
)
def test_tool_calling_failures_are_attributed(
    client: openai.OpenAI, scenario: str, attribution: Attribution, reason_part: str
) -> None:
    result = probe_tool_calling(client, scenario, **PARIS)
    assert result.verdict is Verdict.FAIL
    assert result.attribution is attribution, result.reason
    assert reason_part in result.reason


def test_a_good_tool_call_passes_with_evidence(client: openai.OpenAI) -> None:
    result = probe_tool_calling(client, "good-tool", **PARIS)
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
    result = probe_tool_calling(client, "tool-markup", **PARIS)
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
    result = probe_tool_calling_streaming(client, scenario, **PARIS)
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
        ("thinks-no-answer", Verdict.FAIL, Attribution.CLIENT, "budget exhausted"),
        ("thinks-wrong-answer", Verdict.FAIL, Attribution.MODEL, "does not give the product"),
        ("unclosed-think", Verdict.FAIL, Attribution.MODEL, "never closed it"),
        ("unclosed-think-length", Verdict.FAIL, Attribution.CLIENT, "budget exhausted"),
        (
            "thinks-only-when-streamed",
            Verdict.FAIL,
            Attribution.PARSER,
            "the streamed answer is right but the non-streamed one is not",
        ),
        ("thinks-answers-differ", Verdict.FAIL, Attribution.SERVER_ERROR, "differs from"),
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
        for way in ("streamed", "non_streamed"):
            assert result.evidence.response[way]["reasoning"] == "23 * 47 = 1081."
            assert result.evidence.response[way]["content"] == "The answer is 1081."


def test_the_reasoning_field_name_is_recorded(client: openai.OpenAI) -> None:
    result = probe_thinking(client, "thinks", **FAST)
    assert result.evidence.response["non_streamed"]["reasoning_field"] == "reasoning_content"
    other = probe_thinking(client, "thinks-reasoning-key", **FAST)
    assert other.evidence.response["streamed"]["reasoning_field"] == "reasoning"


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("count", Verdict.PASS, None, ""),
        ("count-wrong", Verdict.FAIL, Attribution.MODEL, "not the numbers 1 to 5"),
        ("empty-think-markup", Verdict.FAIL, Attribution.PARSER, "'<think>', '</think>'"),
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
    result = probe_streaming(client, scenario, count=5, **FAST)
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
    assert probe_system_prompt(client, "pirate", **FAST).verdict is Verdict.PASS
    ignored = probe_system_prompt(client, "hello", **FAST)
    assert (ignored.verdict, ignored.attribution) == (Verdict.FAIL, Attribution.MODEL)
    assert "ignores the system message" in ignored.reason
    empty = probe_inference(client, "empty", **FAST)
    assert (empty.verdict, empty.attribution) == (Verdict.FAIL, Attribution.MODEL)
    # Cut by its budget while reasoning: not the model lacking the capability.
    thinking_only = probe_inference(client, "length-empty", **FAST)
    assert (thinking_only.verdict, thinking_only.attribution) == (Verdict.FAIL, Attribution.CLIENT)
    assert thinking_only.reason.startswith("budget exhausted: ")
    assert "while reasoning" in thinking_only.reason
    assert "raise it with --mlx-token-budget" in thinking_only.reason


def test_a_cut_tool_call_is_the_budget_but_missed_markup_stays_the_parser(
    client: openai.OpenAI,
) -> None:
    missed = probe_tool_calling(client, "tool-markup-length", **PARIS)
    assert (missed.verdict, missed.attribution) == (Verdict.FAIL, Attribution.PARSER)
    cut = probe_tool_calling(client, "call-cut-short", **PARIS)
    assert (cut.verdict, cut.attribution) == (Verdict.FAIL, Attribution.CLIENT)
    assert cut.reason.startswith("budget exhausted: 7 tokens ran out while calling the tool")


def test_the_budget_scales_with_the_multiplier_and_a_cut_answer_names_it(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    from pytest_mlxstack.probes import budget, run_probe

    try:
        budget.set_scale(2.5)
        cut = run_probe("inference", client, "length-empty", timeout=FAST["timeout"])
        assert crafted.requests[-1]["max_tokens"] == 2560  # text budget 1024 x 2.5
        assert cut.reason.startswith("budget exhausted: 2560 tokens")
        assert "now 2.5" in cut.reason
        run_probe("thinking", client, "thinks", timeout=FAST["timeout"])
        assert crafted.requests[-1]["max_tokens"] == 20480  # thinking budget 8192 x 2.5
    finally:
        budget.set_scale(1.0)


def test_inference_needs_the_exact_count_asked_for(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    asked = set()
    for _ in range(12):
        result = probe_inference(client, "counts", **FAST)
        assert result.verdict is Verdict.PASS, result.reason
        asked.add(crafted.requests[-1]["messages"][-1]["content"])
    assert len(asked) > 1, "the number to count to is drawn anew on every run"
    for scenario in ("gibberish", "hello", "count-wrong"):
        wrong = probe_inference(client, scenario, count=5, **FAST)
        assert (wrong.verdict, wrong.attribution) == (Verdict.FAIL, Attribution.MODEL), scenario
        assert "not the numbers 1 to 5" in wrong.reason


@pytest.mark.parametrize(
    ("scenario", "markup"),
    [("empty-think-markup", "'<think>', '</think>'"), ("tool-markup", "'<tool_call>'")],
)
def test_leaked_markup_fails_a_text_probe_even_when_the_text_is_right(
    client: openai.OpenAI, scenario: str, markup: str
) -> None:
    """``<think></think>1, 2, 3, 4, 5`` counts right, but the parser left its markup."""
    result = probe_inference(client, scenario, count=5, **FAST)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.PARSER)
    assert markup in result.reason


def test_multi_turn_recalls_two_names_drawn_per_run(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    before = len(crafted.requests)
    result = probe_multi_turn(client, "recalls-name", **FAST)
    assert result.verdict is Verdict.PASS, result.reason
    sent = crafted.requests[before:]
    assert len(sent) == 2
    names = [request["messages"][0]["content"].split()[-1][:-1] for request in sent]
    assert names[0] != names[1]
    assert [m["role"] for m in sent[0]["messages"]] == ["user", "assistant", "user"]
    answers = result.evidence.response["conversations"]
    assert [a["content"] for a in answers] == [f"Your name is {name}." for name in names]


@pytest.mark.parametrize(
    ("scenario", "reason_part"),
    [
        ("always-alice", "the name 'Bob' from the first turn is missing"),
        ("names-everyone", "also answered"),
        ("hello", "the name 'Alice' from the first turn is missing"),
    ],
)
def test_multi_turn_fails_a_model_that_does_not_read_the_history(
    client: openai.OpenAI, scenario: str, reason_part: str
) -> None:
    result = probe_multi_turn(client, scenario, names=("Alice", "Bob"), **FAST)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.MODEL)
    assert reason_part in result.reason


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


# -- the tool loop and tool_choice -----------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("reads-result", Verdict.PASS, None, ""),
        ("prose", Verdict.FAIL, Attribution.MODEL, "does not use the tool's result"),
        ("always-sunny", Verdict.FAIL, Attribution.MODEL, "(rainy, 12 celsius in Lima)"),
        ("good-tool", Verdict.FAIL, Attribution.MODEL, "called get_weather"),
        ("empty-think-markup", Verdict.FAIL, Attribution.PARSER, "'<think>'"),
    ],
)
def test_tool_result(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_tool_result(client, scenario, city="Lima", report=("rainy", 12), **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    sent = crafted.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["content"] == "rainy, 12 celsius"


def test_tool_result_draws_the_report_per_run(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    sent = set()
    for _ in range(40):
        result = probe_tool_result(client, "reads-result", **FAST)
        assert result.verdict is Verdict.PASS, result.reason
        sent.add(crafted.requests[-1]["messages"][2]["content"])
    # Several reports come back across runs, each one the fixture model is trained on.
    assert len(sent) >= 3
    assert sent <= {f"{c}, {d} celsius" for c, d in probe_prompts.WEATHER_REPORTS}


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("prose", Verdict.PASS, None, ""),
        ("good-tool", Verdict.FAIL, Attribution.SERVER_ERROR, "forbids tool calls"),
        ("tool-markup", Verdict.FAIL, Attribution.MODEL, "even when no tool is offered"),
        (
            "tool-markup-when-shown",
            Verdict.FAIL,
            Attribution.SERVER_ERROR,
            "the server still showed the model its tools",
        ),
        ("empty-think-markup", Verdict.FAIL, Attribution.PARSER, "'<think>'"),
    ],
)
def test_tool_choice_none(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_tool_choice_none(client, scenario, city=CITY, **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    sent = next(request for request in crafted.requests if "tool_choice" in request)
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == result.evidence.request["tool_choice"] == "none"


# -- request parameters ----------------------------------------------------------------------


def test_stop_honoured_passes_and_every_way_is_sent(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    before = len(crafted.requests)
    result = probe_stop(client, "honours-parameters", at=6, **FAST)
    assert result.verdict is Verdict.PASS, result.reason
    sent = crafted.requests[before:]
    assert [(r["stop"], bool(r.get("stream"))) for r in sent] == [
        ([", 6"], False),
        ([", 6"], True),
        (", 6", False),
    ]
    assert result.evidence.response["list_streamed"]["content"] == "1, 2, 3, 4, 5"


def test_stop_faults_of_vllm_mlx_are_the_servers(client: openai.OpenAI) -> None:
    result = probe_stop(client, "ignores-stop", at=6, **FAST)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.SERVER_ERROR)
    assert "without streaming: the stop sequence was ignored" in result.reason
    assert "streamed: the stop text was left in the answer" in result.reason
    assert "refused stop given as a plain string with HTTP 422" in result.reason


def test_stop_and_a_wrong_count_is_the_models(client: openai.OpenAI) -> None:
    result = probe_stop(client, "gibberish", at=6, **FAST)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.MODEL)


@pytest.mark.parametrize(
    ("scenario", "verdict", "reason_part"),
    [
        ("honours-parameters", Verdict.PASS, ""),
        ("count", Verdict.FAIL, "finish_reason 'stop', not 'length'"),
        ("hang", Verdict.FAIL, "no answer within"),
    ],
)
def test_length(client: openai.OpenAI, scenario: str, verdict: Verdict, reason_part: str) -> None:
    result = probe_length(client, scenario, timeout=1.0)
    assert result.verdict is verdict, result.reason
    assert reason_part in result.reason
    if verdict is Verdict.PASS:
        assert result.evidence.response["streamed"]["finish_reason"] == "length"
        assert result.evidence.request["non_streamed"]["max_tokens"] == 3


@pytest.mark.parametrize(
    ("scenario", "verdict", "reason_part"),
    [
        ("count", Verdict.PASS, ""),
        ("no-usage", Verdict.FAIL, "usage is missing"),
        ("bad-total", Verdict.FAIL, "total_tokens 99 is not 11 + 7"),
        ("honours-parameters", Verdict.PASS, ""),
    ],
)
def test_usage(client: openai.OpenAI, scenario: str, verdict: Verdict, reason_part: str) -> None:
    result = probe_usage(client, scenario, **FAST)
    assert result.verdict is verdict, result.reason
    assert reason_part in result.reason
    if verdict is Verdict.FAIL:
        assert result.attribution is Attribution.SERVER_ERROR
    else:
        usage = result.evidence.response["streamed"]["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_a_broken_body_is_attributed_whichever_http_library_the_client_uses(library: str) -> None:
    """openai and anthropic now sit on httpx2 (older releases on httpx): an error raised while
    a streamed body is read is the server's (down, or too slow), never the client's."""
    http = pytest.importorskip(library)
    from pytest_mlxstack.probes.exchange import classify

    dropped = classify(http.RemoteProtocolError("peer closed connection"), timeout=5)
    slow = classify(http.ReadTimeout("timed out"), timeout=5)

    assert dropped.attribution is Attribution.SERVER_DOWN
    assert "RemoteProtocolError" in dropped.reason
    assert (slow.attribution, slow.reason) == (Attribution.TIMEOUT, "no answer within 5 s")


# -- tool choice, selection, parallel calls, no needless call, structured output -------------


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("capable", Verdict.PASS, None, ""),
        ("prose", Verdict.FAIL, Attribution.MODEL, "answered in prose"),
        ("tool-markup", Verdict.FAIL, Attribution.PARSER, "'<tool_call>'"),
        ("wrong-city", Verdict.FAIL, Attribution.MODEL, "location 'Tokyo'"),
        ("openai-400", Verdict.FAIL, Attribution.SERVER_ERROR, "refused tool_choice 'required'"),
        ("server-error", Verdict.FAIL, Attribution.SERVER_ERROR, "HTTP 500"),
    ],
)
def test_tool_choice_required(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_tool_choice_required(client, scenario, city="Oslo", **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    assert crafted.requests[-1]["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("scenario", "tool", "verdict", "attribution", "reason_part"),
    [
        ("capable", "get_time", Verdict.PASS, None, ""),
        ("capable", "get_weather", Verdict.PASS, None, ""),
        ("ignores-named", "get_time", Verdict.FAIL, Attribution.SERVER_ERROR, "did not force"),
        ("prose", "get_time", Verdict.FAIL, Attribution.MODEL, "answered in prose"),
    ],
)
def test_tool_choice_named(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    tool: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_tool_choice_named(client, scenario, city="Lima", tool=tool, **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    sent = crafted.requests[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": tool}}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]


def test_tool_choice_named_asks_with_each_name(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    """One probe names each tool in turn, so a server that ignores tool_choice fails whichever
    tool its model would have picked by itself (never an unexpected pass half the time)."""
    for _ in range(5):
        before = len(crafted.requests)
        assert probe_tool_choice_named(client, "capable", **FAST).verdict is Verdict.PASS
        named = [r["tool_choice"]["function"]["name"] for r in crafted.requests[before:]]
        assert sorted(named) == ["get_time", "get_weather"]
        ignored = probe_tool_choice_named(client, "ignores-named", **FAST)
        assert (ignored.verdict, ignored.attribution) == (Verdict.FAIL, Attribution.SERVER_ERROR)


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("capable", Verdict.PASS, None, ""),
        ("wrong-choice", Verdict.FAIL, Attribution.MODEL, "called 'get_weather', not 'get_time'"),
        ("prose", Verdict.FAIL, Attribution.MODEL, "answered in prose"),
    ],
)
def test_tool_selection(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_tool_selection(client, scenario, city="Berlin", **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    assert crafted.requests[-1]["messages"][-1]["content"] == "What time is it in Berlin?"


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("capable", Verdict.PASS, None, ""),
        ("one-call", Verdict.FAIL, Attribution.MODEL, "made 1 call(s)"),
        ("prose", Verdict.FAIL, Attribution.MODEL, "answered in prose"),
    ],
)
def test_parallel_tool_calls(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_parallel_tool_calls(client, scenario, cities=("Cairo", "Oslo"), **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason


def test_parallel_calls_in_either_order_pass(client: openai.OpenAI) -> None:
    # "capable" answers in the asked order; the judge must not depend on it.
    result = probe_parallel_tool_calls(client, "capable", cities=("Oslo", "Cairo"), **FAST)
    assert result.verdict is Verdict.PASS, result.reason
    calls = result.evidence.response["tool_calls"]
    assert [json.loads(c["arguments"])["location"] for c in calls] == ["Oslo", "Cairo"]


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("capable", Verdict.PASS, None, ""),
        ("good-tool", Verdict.FAIL, Attribution.MODEL, "which no tool helps with"),
        ("count-wrong", Verdict.FAIL, Attribution.MODEL, "not the numbers 1 to 7"),
        ("empty-think-markup", Verdict.FAIL, Attribution.PARSER, "'<think>'"),
        ("tool-markup", Verdict.FAIL, Attribution.PARSER, "'<tool_call>'"),
    ],
)
def test_no_call(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_no_call(client, scenario, count=7, **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    sent = crafted.requests[-1]
    assert sent["messages"][-1]["content"] == "Count to 7."
    assert sent["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("scenario", "verdict", "attribution", "reason_part"),
    [
        ("capable", Verdict.PASS, None, ""),
        ("no-metal", Verdict.FAIL, Attribution.SERVER_ERROR, "HTTP 500"),
        ("refuses-schema", Verdict.FAIL, Attribution.SERVER_ERROR, "refused response_format"),
        ("json-fenced", Verdict.FAIL, Attribution.SERVER_ERROR, "not JSON"),
        ("json-extra-key", Verdict.FAIL, Attribution.SERVER_ERROR, "unknown key 'country'"),
        ("json-wrong", Verdict.FAIL, Attribution.MODEL, "its 5 letters"),
        ("think-markup", Verdict.FAIL, Attribution.PARSER, "'<think>'"),
    ],
)
def test_structured_output(
    client: openai.OpenAI,
    crafted: CraftedServer,
    scenario: str,
    verdict: Verdict,
    attribution: Attribution | None,
    reason_part: str,
) -> None:
    result = probe_structured_output(client, scenario, city="Paris", **FAST)
    assert (result.verdict, result.attribution) == (verdict, attribution), result.reason
    assert reason_part in result.reason
    formats = [r.get("response_format", {}).get("type") for r in crafted.requests[-2:]]
    assert formats == ["json_object", "json_schema"]
    schema = crafted.requests[-1]["response_format"]["json_schema"]["schema"]
    assert schema == probe_prompts.CITY_SCHEMA


def test_structured_output_keeps_the_500_as_evidence(client: openai.OpenAI) -> None:
    result = probe_structured_output(client, "no-metal", city="Tokyo", **FAST)
    response = result.evidence.response
    assert response["json_object"]["content"] == '{"city": "Tokyo", "letters": 5}'
    assert response["json_schema"]["status"] == 500
    assert response["json_schema"]["body"] == "Internal Server Error"
    assert "json_schema: the server answered HTTP 500" in result.reason
