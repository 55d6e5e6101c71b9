"""The expectations file: its format, its errors, and how it judges a cell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_mlxstack.fixture_models import VARIANTS
from pytest_mlxstack.matrix.expectations import (
    ExpectationsError,
    load_expectations,
    parse_expectations,
)
from pytest_mlxstack.matrix.outcome import decide
from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Verdict

RULES = parse_expectations(
    {
        "expectations": [
            {
                "model": "tiny-chat-*",
                "capability": "tool_calling",
                "verdict": "fail",
                "reason": "variants lack tools",
            },
            {
                "model": "tiny-chat-no-tools",
                "capability": "tool_calling",
                "route": "proxied",
                "verdict": "fail",
                "reason": "LiteLLM drops tool calls",
                "link": "https://github.com/org/repo/issues/3",
            },
            {"model": "tiny-chat", "capability": "thinking", "verdict": "pass"},
        ]
    }
)


def judge(model, capability, route, verdict):
    return RULES.judge(
        model=model, quant="bf16", capability=capability, route=route, verdict=Verdict(verdict)
    )


def test_the_most_specific_rule_wins():
    assert judge("tiny-chat-no-tools", "tool_calling", "proxied", "fail").reason == (
        "LiteLLM drops tool calls"
    )
    assert judge("tiny-chat-no-tools", "tool_calling", "direct", "fail").reason == (
        "variants lack tools"
    )
    assert judge("tiny-chat", "tool_calling", "direct", "fail") is None


@pytest.mark.parametrize(
    ("actual", "status"),
    [
        ("fail", "known_failure"),
        ("pass", "unexpected_pass"),
        ("skip", "mismatch"),
    ],
)
def test_status_compares_actual_with_expected(actual, status):
    assert judge("tiny-chat-no-think", "tool_calling", "direct", actual).status == status


def test_an_expected_pass_that_fails_is_a_mismatch():
    assert judge("tiny-chat", "thinking", "direct", "fail").status == "mismatch"
    assert judge("tiny-chat", "thinking", "direct", "pass").status == "as_expected"


BLAMED = parse_expectations(
    [
        {
            "model": "tiny-chat-no-tools",
            "capability": "tool_calling",
            "verdict": "fail",
            "attribution": "model",
            "reason": "never calls tools",
        }
    ]
)


def blamed(attribution: Attribution | None, verdict: str = "fail"):
    result = ProbeResult("tool_calling", Verdict(verdict), "why", attribution)
    expectation = BLAMED.judge(
        model="tiny-chat-no-tools",
        quant="bf16",
        capability="tool_calling",
        route="direct",
        verdict=result.verdict,
        attribution=result.attribution,
    )
    return result, expectation


def test_a_known_failure_with_an_attribution_xfails_only_for_that_cause():
    result, expectation = blamed(Attribution.MODEL)
    assert (expectation.status, expectation.attribution) == ("known_failure", Attribution.MODEL)
    assert decide(result, expectation).action == "xfail"

    result, expectation = blamed(Attribution.SERVER_DOWN)
    assert expectation.status == "mismatch"
    outcome = decide(result, expectation, label="(direct) for tiny-chat-no-tools [bf16]")
    assert outcome.action == "fail"
    assert outcome.message == (
        "tool_calling (direct) for tiny-chat-no-tools [bf16] was expected to fail as model "
        "(never calls tools) but failed as server_down: why"
    )

    result, expectation = blamed(None)
    assert expectation.status == "mismatch"
    assert "but failed as unattributed: why" in decide(result, expectation).message

    result, expectation = blamed(None, "pass")
    assert expectation.status == "unexpected_pass"
    assert decide(result, expectation).action == "pass"


def test_without_an_attribution_any_failure_is_the_known_one():
    assert judge("tiny-chat-no-tools", "tool_calling", "direct", "fail").attribution is None
    expectation = RULES.judge(
        model="tiny-chat-no-tools",
        quant="bf16",
        capability="tool_calling",
        route="direct",
        verdict=Verdict.FAIL,
        attribution=Attribution.SERVER_DOWN,
    )
    assert expectation.status == "known_failure"


def test_the_fixture_expectations_name_whose_fault_each_failure_is():
    import pytest_mlxstack.suites

    path = Path(pytest_mlxstack.suites.__file__).parent / "fixture_expectations.yaml"
    rules = load_expectations(path).rules
    found = {
        (r.model, r.capability, r.route.value if r.route else None, r.server): (
            r.attribution.value if r.attribution else None
        )
        for r in rules
    }
    negative_controls = {
        ("tiny-chat-no-tools", "tool_calling", None, None): "model",
        ("tiny-chat-no-tools", "tool_calling_streaming", None, None): "model",
        ("tiny-chat-bad-tool-syntax", "tool_calling", None, None): "parser",
        ("tiny-chat-bad-tool-syntax", "tool_calling_streaming", None, None): "parser",
        ("tiny-chat-no-think", "thinking", None, None): "model",
        ("tiny-chat-no-tools", "*_api", None, None): "model",
        ("tiny-chat-bad-tool-syntax", "*_api", None, None): "parser",
        ("tiny-chat-no-think", "*_api", None, None): "model",
        ("tiny-chat-calls-always", "no_call", None, None): "model",
        ("tiny-chat-ignores-results", "tool_result", None, None): "model",
        ("tiny-chat-ignores-results", "*_api", None, None): "model",
        **{
            (model, capability, None, None): blame
            for model, blame in (
                ("tiny-chat-no-tools", "model"),
                ("tiny-chat-bad-tool-syntax", "parser"),
            )
            for capability in (
                "tool_choice_required",
                "tool_choice_named",
                "tool_selection",
                "parallel_tool_calls",
            )
        },
    }
    vllm_mlx_and_litellm = {
        ("tiny-chat*", "structured_output", None, "vllm-mlx"): "server_error",
        ("tiny-chat*", "stop", None, "vllm-mlx"): "server_error",
        ("tiny-chat*", "usage", None, "vllm-mlx"): "server_error",
        ("tiny-chat*", "responses_api", "direct", "vllm-mlx"): "server_error",
        ("tiny-chat*", "messages_api", "direct", "vllm-mlx"): "server_error",
        ("tiny-chat*", "messages_api", "proxied", None): "proxy",
    }
    models = [name for name in VARIANTS]
    mlx_lm = {
        **{
            (model, "tool_choice_none", None, "mlx-lm"): "server_error"
            for model in models
            if model != "tiny-chat-no-tools"  # never calls a tool, so passes
        },
        ("tiny-chat*", "tool_choice_named", None, "mlx-lm"): "server_error",
        ("tiny-chat-bad-tool-syntax", "tool_choice_named", None, "mlx-lm"): "model",
        **{(model, "*_api", "direct", "mlx-lm"): "server_error" for model in models},
        **{(model, "responses_api", "proxied", "mlx-lm"): "server_error" for model in models},
        **{(model, "messages_api", "proxied", "mlx-lm"): "server_error" for model in models},
    }
    llama_cpp = {
        ("tiny-chat", "tool_choice_none", None, "llama.cpp"): "server_error",
        ("tiny-chat", "tool_choice_named", None, "llama.cpp"): "server_error",
        ("tiny-chat", "*_api", "direct", "llama.cpp"): "server_error",
    }
    assert found == {**negative_controls, **vllm_mlx_and_litellm, **mlx_lm, **llama_cpp}


def test_a_rule_naming_a_server_applies_only_to_runs_on_that_server():
    rules = parse_expectations(
        [
            {"model": "m", "capability": "stop", "server": "vllm-*", "verdict": "fail",
             "reason": "ignores stop"},
        ]
    )  # fmt: skip
    ask = {"model": "m", "quant": "bf16", "capability": "stop", "route": "direct"}
    assert rules.find(**ask) is not None  # a run whose server is unknown
    rules.server = "vllm-mlx"
    assert rules.find(**ask) is not None
    rules.server = "mlx-lm"
    assert rules.find(**ask) is None
    with pytest.raises(ExpectationsError, match="server 3 is not a server kind"):
        parse_expectations([{"model": "m", "capability": "x", "verdict": "pass", "server": 3}])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"capability": "x", "verdict": "fail", "reason": "r"},
            "entry 1: field 'model' is missing",
        ),
        ({"model": "m", "capability": "x", "verdict": "broken", "reason": "r"}, "verdict 'broken'"),
        ({"model": "m", "capability": "x", "verdict": "fail"}, "field 'reason' is missing"),
        (
            {"model": "m", "capability": "x", "verdict": "fail", "reason": "r", "route": "lan"},
            "route 'lan' is not one of direct, proxied",
        ),
        (
            {"model": "m", "capability": "x", "verdict": "fail", "reason": "r", "why": "?"},
            "unknown field 'why'",
        ),
        (
            {"model": "m", "capability": "x", "verdict": "fail", "reason": "r", "link": "ftp://x"},
            "not an http",
        ),
        (
            {"model": "m", "capability": "x", "verdict": "fail", "reason": "r", "attribution": "x"},
            "attribution 'x' is not one of server_down, server_error, parser, model",
        ),
        (
            {"model": "m", "capability": "x", "verdict": "pass", "attribution": "model"},
            "attribution is given with verdict pass; only a failure has one",
        ),
        ("just text", "must be a mapping"),
    ],
)
def test_bad_entries_name_entry_and_field(entry, message):
    with pytest.raises(ExpectationsError, match=message):
        parse_expectations([entry], source="known.yaml")


def test_files_are_read_and_their_errors_name_the_file(tmp_path):
    good = tmp_path / "known.yaml"
    good.write_text(
        "expectations:\n"
        "  - {model: m, capability: thinking, verdict: fail, reason: no think tokens}\n"
    )
    assert len(load_expectations(good)) == 1

    bad = tmp_path / "bad.yaml"
    bad.write_text("expectations:\n  - model: [unclosed\n")
    with pytest.raises(ExpectationsError, match=rf"{bad}: is not valid YAML at the end of the"):
        load_expectations(bad)
    with pytest.raises(ExpectationsError, match="does not exist"):
        load_expectations(tmp_path / "absent.yaml")
    assert len(parse_expectations(None)) == 0


def test_an_expectations_file_that_is_a_pipe_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "expectations.yaml"
    os.mkfifo(path)  # nobody writes: reading it would wait forever
    with pytest.raises(ExpectationsError, match=r"is a named pipe, not a regular file"):
        load_expectations(path)
