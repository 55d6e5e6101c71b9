"""How agents steer tools: ``tool_choice`` "required" and named, choosing between two tools,
not calling when no tool helps, and several calls in one answer.

The probes follow llama.cpp's server tests and vLLM's tool-use tests. Each draws its city,
pair of cities, count or named tool per run, so a model that learned one answer fails. A
call the request forbids or a call to a tool ``tool_choice`` did not name is the server's
fault (it must not let one through); an answer that lacks a needed call, or makes one nobody
needed, is the model's; markup left in content is the parser's (``judge_calls``).
"""

from __future__ import annotations

from openai import OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Verdict
from pytest_mlxstack.probes.answer import Answer
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.capabilities import (
    DEFAULT_MAX_TOKENS,
    _ask,
    _ask_once,
    _evidence,
    _failed_exchange,
    _judged_text,
    _result,
    count_problem,
    draw,
    judge_calls,
    refused_parameter,
)
from pytest_mlxstack.probes.exchange import DEFAULT_TIMEOUT_S, excerpt


def _calls(answer: Answer) -> str:
    return ", ".join(f"{c.name}({excerpt(c.arguments, 80)})" for c in answer.tool_calls)


def _called(
    capability: str,
    client: OpenAI,
    model: str,
    case: probe_prompts.ProbeCase,
    *,
    timeout: float,
    max_tokens: int,
    note: str = "",
) -> ProbeResult:
    """Send ``case`` (its tools and request parameters) and judge the calls it expects."""
    exchange, answer = _ask(
        client, model, case, timeout=timeout, max_tokens=max_tokens, extra=case.extra
    )
    evidence = _evidence(exchange, answer, [note] if note else [])
    if answer is None:
        refused = refused_parameter(exchange, f"tool_choice {case.extra.get('tool_choice')!r}")
        if refused is not None and case.extra:
            return _result(capability, Verdict.FAIL, refused[1], evidence, refused[0])
        return _failed_exchange(capability, exchange, evidence)
    expected = [
        (call.name, str(next(iter(call.arguments.values())))) for call in case.expected_tool_calls
    ]
    problem = judge_calls(answer, case.tools or [], expected)
    if problem is not None:
        return _result(capability, Verdict.FAIL, problem[1], evidence, problem[0])
    return _result(capability, Verdict.PASS, "", evidence)


@probes("tool_choice_required")
def probe_tool_choice_required(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str | None = None,
) -> ProbeResult:
    """The weather question (city drawn per run) with ``tool_choice: "required"``: a valid
    get_weather call naming the city comes back."""
    city = city if city is not None else draw(probe_prompts.REQUIRED_CITIES)[0]
    return _called(
        "tool_choice_required",
        client,
        model,
        probe_prompts.tool_choice_required(city),
        timeout=timeout,
        max_tokens=max_tokens,
    )


@probes("tool_choice_named")
def probe_tool_choice_named(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str | None = None,
    tool: str | None = None,
) -> ProbeResult:
    """'I am flying to C tomorrow.' with get_weather and get_time offered, asked once with
    each named in ``tool_choice`` (C and the order drawn per run; ``tool`` asks with that one
    only): each answer is a call to the named one, naming C. Asking with both names means a
    server that ignores ``tool_choice`` fails whichever tool its model would have picked."""
    capability = "tool_choice_named"
    if city is None:
        city = draw(sorted({choice_city for choice_city, _ in probe_prompts.NAMED_CHOICES}))[0]
    names = [tool] if tool is not None else draw(probe_prompts.NAMED_TOOLS, 2)
    result = ProbeResult(capability, Verdict.PASS)
    for name in names:
        result = _named_call(client, model, city, name, timeout=timeout, max_tokens=max_tokens)
        if result.verdict is not Verdict.PASS:
            return result
    return result


def _named_call(
    client: OpenAI, model: str, city: str, tool: str, *, timeout: float, max_tokens: int
) -> ProbeResult:
    capability = "tool_choice_named"
    case = probe_prompts.tool_choice_named(city, tool)
    result = _called(
        capability,
        client,
        model,
        case,
        timeout=timeout,
        max_tokens=max_tokens,
        note=f"tool_choice names {tool}",
    )
    calls = result.evidence.response.get("tool_calls") or []
    others = [c for c in calls if isinstance(c, dict) and c.get("name") != tool]
    if result.verdict is Verdict.FAIL and others:
        # A call to a tool tool_choice did not name: the server neither forced the name nor
        # kept the other tools away from the model.
        named = ", ".join(str(c.get("name")) for c in others)
        return _result(
            capability,
            Verdict.FAIL,
            f"tool_choice names {tool!r}, but the server returned a call to {named}: it did "
            f"not force the named function",
            result.evidence,
            Attribution.SERVER_ERROR,
        )
    return result


@probes("tool_selection")
def probe_tool_selection(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str | None = None,
) -> ProbeResult:
    """'What time is it in C?' (C drawn per run) with get_weather and get_time offered: one
    call, to get_time, naming C."""
    city = city if city is not None else draw(probe_prompts.SELECTION_CITIES)[0]
    return _called(
        "tool_selection",
        client,
        model,
        probe_prompts.tool_selection(city),
        timeout=timeout,
        max_tokens=max_tokens,
    )


@probes("parallel_tool_calls")
def probe_parallel_tool_calls(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    cities: tuple[str, str] | None = None,
) -> ProbeResult:
    """'What is the weather in A and B?' (the pair drawn per run): two get_weather calls, one
    per city, in any order, each valid against the tool's schema."""
    first, second = cities if cities is not None else draw(probe_prompts.PARALLEL_PAIRS)[0]
    return _called(
        "parallel_tool_calls",
        client,
        model,
        probe_prompts.parallel_weather(first, second),
        timeout=timeout,
        max_tokens=max_tokens,
    )


@probes("no_call")
def probe_no_call(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count: int | None = None,
) -> ProbeResult:
    """'Count to N.' (N drawn per run) with get_weather offered: the exact count in prose, no
    call (an agent that calls a tool for everything loops)."""
    capability = "no_call"
    n = count if count is not None else draw(probe_prompts.NO_CALL_COUNTS)[0]
    case = probe_prompts.no_call(n)
    asked = _ask_once(capability, client, model, case, timeout=timeout, max_tokens=max_tokens)
    if isinstance(asked, ProbeResult):
        return asked
    answer, evidence = asked
    if answer.tool_calls:
        return _result(
            capability,
            Verdict.FAIL,
            f"asked to count to {n}, which no tool helps with, the model called {_calls(answer)}",
            evidence,
            Attribution.MODEL,
        )
    return _judged_text(
        capability,
        answer,
        evidence,
        max_tokens=max_tokens,
        judge=lambda said: count_problem(said.content, n),
    )
