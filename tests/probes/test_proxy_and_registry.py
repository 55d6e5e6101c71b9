"""Re-attribution to the proxy, and ``n/a`` for capabilities a catalog entry does not claim."""

from __future__ import annotations

from dataclasses import dataclass

import openai
import pytest
from crafted_server import CraftedServer

from pytest_mlxstack.matrix.verdicts import Attribution, Verdict
from pytest_mlxstack.probes import (
    attribute_proxy,
    capability_names,
    probe_inference,
    probe_tool_calling,
    run_probe,
)

FAST = {"timeout": 5.0}


def test_a_proxied_failure_is_the_proxys_when_direct_passes(client: openai.OpenAI) -> None:
    direct = probe_tool_calling(client, "good-tool", **FAST)
    proxied = probe_tool_calling(client, "server-error", **FAST)
    blamed = attribute_proxy(direct, proxied)
    assert blamed.verdict is Verdict.FAIL
    assert blamed.attribution is Attribution.PROXY
    assert blamed.reason.startswith("works direct, fails through the proxy: ")
    assert "HTTP 500" in blamed.reason
    assert "attributed to server_error before comparing" in blamed.evidence.notes[-1]
    assert proxied.attribution is Attribution.SERVER_ERROR  # the original is left alone


def test_a_failure_on_both_routes_keeps_its_attribution(client: openai.OpenAI) -> None:
    direct = probe_tool_calling(client, "prose", **FAST)
    proxied = probe_tool_calling(client, "prose", **FAST)
    assert attribute_proxy(direct, proxied).attribution is Attribution.MODEL


def test_a_proxied_pass_stays_a_pass(client: openai.OpenAI) -> None:
    direct = probe_tool_calling(client, "prose", **FAST)
    proxied = probe_tool_calling(client, "good-tool", **FAST)
    assert attribute_proxy(direct, proxied).verdict is Verdict.PASS


def test_attribute_proxy_refuses_different_capabilities(client: openai.OpenAI) -> None:
    with pytest.raises(ValueError, match="compares one capability"):
        attribute_proxy(
            probe_inference(client, "hello", **FAST), probe_tool_calling(client, "prose", **FAST)
        )


@dataclass
class Declared:
    tool_calling: bool
    thinking: bool


def test_an_undeclared_capability_is_not_applicable_and_sends_nothing(
    client: openai.OpenAI, crafted: CraftedServer
) -> None:
    before = len(crafted.requests)
    result = run_probe(
        "tool_calling",
        client,
        "good-tool",
        capabilities=Declared(tool_calling=False, thinking=True),
    )
    assert result.verdict is Verdict.NOT_APPLICABLE
    assert "does not declare tool_calling" in result.reason
    assert len(crafted.requests) == before


def test_a_declared_capability_is_probed(client: openai.OpenAI) -> None:
    declared = Declared(tool_calling=True, thinking=False)
    assert run_probe("tool_calling", client, "good-tool", capabilities=declared).verdict is (
        Verdict.PASS
    )
    assert run_probe("thinking", client, "thinks", capabilities=declared).verdict is (
        Verdict.NOT_APPLICABLE
    )


def test_unknown_capability_names_the_known_ones(client: openai.OpenAI) -> None:
    with pytest.raises(ValueError, match="probes exist for inference, system_prompt"):
        run_probe("vision", client, "hello")
    assert capability_names() == (
        "inference",
        "system_prompt",
        "multi_turn",
        "streaming",
        "tool_calling",
        "tool_calling_streaming",
        "tool_result",
        "tool_choice_none",
        "tool_choice_required",
        "tool_choice_named",
        "tool_selection",
        "no_call",
        "parallel_tool_calls",
        "thinking",
        "structured_output",
        "stop",
        "length",
        "usage",
        "responses_api",
        "messages_api",
        "errors",
    )


def test_a_proxied_failure_is_server_down_when_direct_finds_the_server_down(
    client: openai.OpenAI,
) -> None:
    direct = probe_tool_calling(client, "close", **FAST)
    proxied = probe_tool_calling(client, "server-error", **FAST)  # LiteLLM's 500
    blamed = attribute_proxy(direct, proxied)
    assert blamed.attribution is Attribution.SERVER_DOWN
    assert blamed.reason.startswith("the tier's server behind the proxy is down: ")
    assert "HTTP 500" in blamed.reason  # what the proxy said stays visible
    assert any("connection failed" in note for note in blamed.evidence.notes)
