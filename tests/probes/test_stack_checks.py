"""Model listing, routing and concurrency checks against the crafted server."""

from __future__ import annotations

import openai
from crafted_server import CraftedServer

from pytest_mlxstack.matrix.verdicts import Attribution, Route, Verdict
from pytest_mlxstack.probes import probe_concurrency, probe_model_listing, probe_routing


def test_a_listed_model_passes(client: openai.OpenAI) -> None:
    result = probe_model_listing(client, "hello", timeout=5)
    assert result.verdict is Verdict.PASS
    assert "hello" in result.evidence.response["models"]


def test_an_unlisted_model_is_blamed_on_the_route(client: openai.OpenAI) -> None:
    direct = probe_model_listing(client, "qwen9", timeout=5)
    assert (direct.verdict, direct.attribution) == (Verdict.FAIL, Attribution.SERVER_ERROR)
    assert "'qwen9' is not among the listed models" in direct.reason
    proxied = probe_model_listing(client, "qwen9", route=Route.PROXIED, timeout=5)
    assert proxied.attribution is Attribution.PROXY


def test_routing_passes_when_the_proxy_answers_like_the_server(client: openai.OpenAI) -> None:
    result = probe_routing(client, "hello", direct=client, served_name="hello", timeout=5)
    assert result.verdict is Verdict.PASS, result.reason
    assert "did not say which backend" in result.evidence.notes[0]


def test_routing_to_another_backend_is_the_proxys_fault(client: openai.OpenAI) -> None:
    result = probe_routing(
        client, "routed-elsewhere", direct=client, served_name="hello", timeout=5
    )
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.PROXY)
    assert "not to the tier's server" in result.reason


def test_routing_to_a_server_that_answers_differently_fails(client: openai.OpenAI) -> None:
    result = probe_routing(client, "pirate", direct=client, served_name="hello", timeout=5)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.PROXY)
    assert "'Ahoy, matey! What be ye needing?'" in result.reason


def test_concurrent_requests_all_answered(client: openai.OpenAI, crafted: CraftedServer) -> None:
    before = len(crafted.requests)
    result = probe_concurrency(client, "counts-by-request", requests=3, timeout=5)
    assert result.verdict is Verdict.PASS, result.reason
    assert len(crafted.requests) == before + 6  # each prompt alone, then all at once


def test_a_server_refusing_concurrent_requests_fails(client: openai.OpenAI) -> None:
    result = probe_concurrency(client, "single-file", requests=3, timeout=5)
    assert (result.verdict, result.attribution) == (Verdict.FAIL, Attribution.SERVER_ERROR)
    assert "HTTP 503" in result.reason
