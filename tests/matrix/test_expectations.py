"""The expectations file: its format, its errors, and how it judges a cell."""

from __future__ import annotations

import pytest

from pytest_mlxstack.matrix.expectations import (
    ExpectationsError,
    load_expectations,
    parse_expectations,
)
from pytest_mlxstack.matrix.verdicts import Verdict

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
    with pytest.raises(ExpectationsError, match=rf"{bad}: not valid YAML at line \d"):
        load_expectations(bad)
    with pytest.raises(ExpectationsError, match="does not exist"):
        load_expectations(tmp_path / "absent.yaml")
    assert len(parse_expectations(None)) == 0
