"""The agents' protocols: a server without the route, a dead server, and the proxy's blame.

Real vllm-mlx and LiteLLM on every fixture variant are in tests/suites/test_honesty.py (the
main job); here the crafted server stands in for what they will not do on demand.
"""

from __future__ import annotations

import dataclasses
import socket

import openai
import pytest
from crafted_server import CraftedServer

from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict
from pytest_mlxstack.probes import attribute_proxy
from pytest_mlxstack.probes.protocols import probe_messages_api, probe_responses_api

PROBES = {"/v1/responses": probe_responses_api, "/v1/messages": probe_messages_api}


@pytest.mark.parametrize("route", list(PROBES))
def test_a_server_without_the_route_fails_on_the_server_with_the_404(
    client: openai.OpenAI, crafted: CraftedServer, route: str
) -> None:
    result = PROBES[route](client, "detail-404", timeout=5.0)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.SERVER_ERROR)
    assert f"the server has no {route} route (HTTP 404" in result.reason
    assert result.evidence.response["text"]["status"] == 404
    assert result.evidence.response["failed_step"] == "text"


@pytest.mark.parametrize(
    ("route", "scenario"), [("/v1/responses", "responses-cut"), ("/v1/messages", "messages-cut")]
)
def test_an_answer_cut_by_its_budget_is_not_the_models_fault(
    client: openai.OpenAI, crafted: CraftedServer, route: str, scenario: str
) -> None:
    result = PROBES[route](client, scenario, timeout=5.0, count=5)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.CLIENT)
    assert result.reason.startswith(f"{route}, text: budget exhausted: 1024 tokens")
    assert "raise it with --mlx-token-budget" in result.reason
    sent = crafted.requests[-1]
    assert sent.get("max_output_tokens", sent.get("max_tokens")) == 1024
    assert result.evidence.response["text"]["finish_reason"] == "length"


@pytest.mark.parametrize("route", list(PROBES))
def test_steps_the_catalog_entry_does_not_declare_are_left_out(
    client: openai.OpenAI, crafted: CraftedServer, route: str
) -> None:
    from pytest_mlxstack.catalog.schema import Capabilities
    from pytest_mlxstack.probes import run_probe

    # 'detail-404' fails the first step whatever it is: the notes say what was left out.
    declared = Capabilities(tool_calling=False, thinking=False)
    capability = "responses_api" if route == "/v1/responses" else "messages_api"
    result = run_probe(capability, client, "detail-404", capabilities=declared, timeout=5.0)
    assert result.verdict is Verdict.FAIL  # the protocol itself is still probed
    assert result.evidence.notes == [
        "not probed: tool call and tool result (the catalog entry does not declare tool_calling)",
        "not probed: reasoning (the catalog entry does not declare thinking)",
    ]


@pytest.mark.parametrize("route", list(PROBES))
def test_a_dead_server_is_server_down(route: str) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x")
    result = PROBES[route](dead, "m", timeout=5.0)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.SERVER_DOWN)


def _walked(passed: list[str], failed: str | None) -> ProbeResult:
    response: dict[str, object] = {"steps_passed": passed}
    if failed:
        response["failed_step"] = failed
    return ProbeResult(
        "messages_api",
        Verdict.FAIL,
        f"/v1/messages, {failed}: ...",
        Attribution.MODEL if failed == "reasoning" else Attribution.SERVER_ERROR,
        Evidence(response=response),
    )


def test_the_proxy_is_blamed_for_a_step_that_passed_direct() -> None:
    # Direct fails later (the unknown-model error shape) but passed the reasoning step that
    # the proxied session failed: the proxy dropped the thinking block.
    direct = _walked(
        ["text", "tool call", "tool result", "streamed text", "reasoning"], "unknown model"
    )
    proxied = _walked(["text", "tool call", "tool result", "streamed text"], "reasoning")
    blamed = attribute_proxy(direct, proxied)
    assert blamed.attribution is Attribution.PROXY
    assert blamed.reason.startswith("works direct, fails through the proxy")
    # The same step failing direct too stays the model's.
    direct_too = dataclasses.replace(
        direct, evidence=Evidence(response={"steps_passed": ["text"], "failed_step": "reasoning"})
    )
    assert attribute_proxy(direct_too, proxied).attribution is Attribution.MODEL
