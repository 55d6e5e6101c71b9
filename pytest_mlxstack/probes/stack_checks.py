"""Checks of the stack around a model rather than of the model: is it listed, does the proxy
route a tier name to the right server, do concurrent requests all come back right.

They return ``ProbeResult`` like the capability probes, so the matrix shows them as cells.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from openai import OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Route, Verdict
from pytest_mlxstack.probes.answer import from_completion
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.exchange import DEFAULT_TIMEOUT_S, Exchange, chat, classify, excerpt

# LiteLLM names the backend it used in this response header.
API_BASE_HEADER = "x-litellm-model-api-base"
CONCURRENT_REQUESTS = 4


@probes("model_listing")
def probe_model_listing(
    client: OpenAI,
    model: str,
    *,
    route: Route | str = Route.DIRECT,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> ProbeResult:
    """``GET /v1/models`` lists ``model`` (the served name direct, the tier name proxied)."""
    capability = "model_listing"
    route = Route(route)
    started = time.monotonic()
    evidence = Evidence(request={"method": "GET", "path": "/v1/models", "expected": model})
    try:
        listed = [m.id for m in client.with_options(timeout=timeout, max_retries=0).models.list()]
    except Exception as exc:  # attributed like any failed exchange
        failure = classify(exc, timeout=timeout)
        evidence.duration_s = round(time.monotonic() - started, 3)
        evidence.response = {"status": failure.status, "body": excerpt(failure.body)}
        return ProbeResult(capability, Verdict.FAIL, failure.reason, failure.attribution, evidence)
    evidence.duration_s = round(time.monotonic() - started, 3)
    evidence.response = {"status": 200, "models": listed[:50]}
    if model in listed:
        return ProbeResult(capability, Verdict.PASS, evidence=evidence)
    blame = Attribution.PROXY if route is Route.PROXIED else Attribution.SERVER_ERROR
    return ProbeResult(
        capability,
        Verdict.FAIL,
        f"{model!r} is not among the listed models ({', '.join(listed[:10]) or 'none'})",
        blame,
        evidence,
    )


@probes("routing")
def probe_routing(
    proxy: OpenAI,
    tier: str,
    *,
    direct: OpenAI,
    served_name: str,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> ProbeResult:
    """Asking the proxy for ``tier`` reaches that tier's server: the proxy names the tier's
    backend (when it says which one it used) and the answer equals the server's own."""
    capability = "routing"
    case = probe_prompts.GREETING
    through = chat(proxy, tier, case.messages, timeout=timeout, max_tokens=64)
    straight = chat(direct, served_name, case.messages, timeout=timeout, max_tokens=64)
    evidence = Evidence(
        request={"proxied_model": tier, "direct_model": served_name, "messages": case.messages},
        response={"proxied": _summary(through), "direct": _summary(straight)},
        duration_s=round(through.duration_s + straight.duration_s, 3),
    )
    for exchange, where in ((through, "through the proxy"), (straight, "direct")):
        if exchange.failure is not None:
            attribution = Attribution.PROXY if exchange is through else exchange.failure.attribution
            return ProbeResult(
                capability,
                Verdict.FAIL,
                f"the request {where} failed: {exchange.failure.reason}",
                attribution,
                evidence,
            )
    expected_base = str(direct.base_url).rstrip("/")
    used_base = (through.headers.get(API_BASE_HEADER) or "").rstrip("/")
    if used_base and used_base != expected_base:
        return ProbeResult(
            capability,
            Verdict.FAIL,
            f"the proxy sent {tier!r} to {used_base}, not to the tier's server {expected_base}",
            Attribution.PROXY,
            evidence,
        )
    if not used_base:
        evidence.notes.append(f"the proxy did not say which backend it used ({API_BASE_HEADER})")
    proxied_text, direct_text = _content(through), _content(straight)
    if proxied_text != direct_text:
        return ProbeResult(
            capability,
            Verdict.FAIL,
            f"through the proxy {tier!r} answered {excerpt(proxied_text, 100)!r}, but its "
            f"server answers {excerpt(direct_text, 100)!r} to the same greedy request",
            Attribution.PROXY,
            evidence,
        )
    return ProbeResult(capability, Verdict.PASS, evidence=evidence)


@probes("concurrency")
def probe_concurrency(
    client: OpenAI,
    model: str,
    *,
    requests: int = CONCURRENT_REQUESTS,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> ProbeResult:
    """``requests`` different chats sent at once all succeed, each with the answer it gets
    alone (greedy decoding): no request is dropped, and no answer goes to the wrong caller."""
    capability = "concurrency"
    targets = [
        probe_prompts.COUNT_TARGETS[i % len(probe_prompts.COUNT_TARGETS)] for i in range(requests)
    ]
    cases = [probe_prompts.count_to(n) for n in targets]

    def ask(case: probe_prompts.ProbeCase) -> Exchange:
        return chat(client, model, case.messages, timeout=timeout, max_tokens=64)

    serial = [ask(case) for case in cases]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=requests) as pool:
        parallel = list(pool.map(ask, cases))
    evidence = Evidence(
        request={"model": model, "concurrent": requests, "prompts": [c.key for c in cases]},
        response={"answers": [excerpt(_content(e), 80) for e in parallel]},
        duration_s=round(time.monotonic() - started, 3),
    )
    for case, alone, together in zip(cases, serial, parallel, strict=True):
        for exchange in (alone, together):
            if exchange.failure is not None:
                return ProbeResult(
                    capability,
                    Verdict.FAIL,
                    f"{case.key}: {exchange.failure.reason}",
                    exchange.failure.attribution,
                    evidence,
                )
        if _content(alone) != _content(together):
            return ProbeResult(
                capability,
                Verdict.FAIL,
                f"{case.key} answered {excerpt(_content(together), 80)!r} among concurrent "
                f"requests but {excerpt(_content(alone), 80)!r} alone",
                Attribution.SERVER_ERROR,
                evidence,
            )
    return ProbeResult(capability, Verdict.PASS, evidence=evidence)


def _content(exchange: Exchange) -> str:
    return from_completion(exchange.completion).content if exchange.completion else ""


def _summary(exchange: Exchange) -> dict[str, Any]:
    if exchange.failure is not None:
        return {"status": exchange.status, "error": exchange.failure.reason}
    return {
        "status": exchange.status,
        "content": excerpt(_content(exchange)),
        "backend": exchange.headers.get(API_BASE_HEADER),
    }
