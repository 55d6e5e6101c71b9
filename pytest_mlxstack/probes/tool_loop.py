"""The rest of an agent's tool loop: reading a tool's result back, and ``tool_choice: none``.

Coding agents send a tool's result as a ``tool`` message and expect prose built on it, and
switch tools off with ``tool_choice: "none"`` while keeping them in the request. The probes
follow vLLM's tool-use tests: the same weather question, the parameter changed. A call
returned under ``"none"`` is the server's fault (it must not parse or force one); a call
written as text is the server's too when the model answers in prose once no tool is offered.
"""

from __future__ import annotations

from openai import OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict
from pytest_mlxstack.probes.answer import Answer
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.capabilities import (
    DEFAULT_MAX_TOKENS,
    _ask,
    _ask_once,
    _judged_text,
    _leaked_markup,
    _result,
    draw,
)
from pytest_mlxstack.probes.exchange import DEFAULT_TIMEOUT_S, excerpt

# Every (city, report) the probe may send, the tool's answer drawn per run from them.
RESULT_CHOICES = tuple(
    (city, report) for city in probe_prompts.CITIES for report in probe_prompts.result_reports(city)
)


@probes("tool_result")
def probe_tool_result(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str | None = None,
    report: tuple[str, int] | None = None,
) -> ProbeResult:
    """After its get_weather call and the tool's answer (a condition and temperature drawn
    per run, e.g. "rainy, 12 celsius"), the model answers in prose that uses the result: the
    condition, the temperature and the city, no new call."""
    capability = "tool_result"
    if city is None:
        city, drawn = draw(RESULT_CHOICES)[0]
        report = report if report is not None else drawn
    elif report is None:
        report = draw(probe_prompts.result_reports(city))[0]
    case = probe_prompts.weather_result(city, report)
    asked = _ask_once(capability, client, model, case, timeout=timeout, max_tokens=max_tokens)
    if isinstance(asked, ProbeResult):
        return asked
    answer, evidence = asked
    condition, degrees = report
    if answer.tool_calls:
        called = ", ".join(f"{c.name}({excerpt(c.arguments, 80)})" for c in answer.tool_calls)
        return _result(
            capability,
            Verdict.FAIL,
            f"given the tool's result, the model called {called} again instead of answering",
            evidence,
            Attribution.MODEL,
        )

    def judge(answer_: Answer) -> str | None:
        said = answer_.content.lower()
        if all(part.lower() in said for part in (str(degrees), condition, city)):
            return None
        return (
            f"the answer does not use the tool's result ({condition}, {degrees} celsius in "
            f"{city}): {excerpt(answer_.content, 160)!r}"
        )

    return _judged_text(capability, answer, evidence, max_tokens=max_tokens, judge=judge)


@probes("tool_choice_none")
def probe_tool_choice_none(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str | None = None,
) -> ProbeResult:
    """With the tool offered but ``tool_choice: "none"``, the weather question gets prose."""
    capability = "tool_choice_none"
    city = city if city is not None else draw(probe_prompts.CITIES)[0]
    case = probe_prompts.weather(city)
    asked = _ask_once(
        capability,
        client,
        model,
        case,
        timeout=timeout,
        max_tokens=max_tokens,
        extra={"tool_choice": "none"},
    )
    if isinstance(asked, ProbeResult):
        return asked
    answer, evidence = asked
    if answer.tool_calls:
        called = ", ".join(f"{c.name}({excerpt(c.arguments, 80)})" for c in answer.tool_calls)
        return _result(
            capability,
            Verdict.FAIL,
            f"tool_choice 'none' forbids tool calls, but the server returned {called}",
            evidence,
            Attribution.SERVER_ERROR,
        )
    leaked = _leaked_markup(answer, ("get_weather",))
    if leaked is not None and leaked[0] is Attribution.PARSER and "tool-call" in leaked[1]:
        return _call_in_content(client, model, city, answer, evidence, timeout=timeout)
    return _judged_text(capability, answer, evidence, max_tokens=max_tokens, judge=lambda _: None)


def _call_in_content(
    client: OpenAI,
    model: str,
    city: str,
    answer: Answer,
    evidence: Evidence,
    *,
    timeout: float,
) -> ProbeResult:
    """A call written as text under ``tool_choice: "none"``: the model's fault, or the
    server's? A server honours 'none' by keeping the tools from the model (or telling it not to
    call them); the model cannot see ``tool_choice`` itself. So the same question is asked
    without tools: a model that then answers in prose only called because the server still
    showed it the tools (llama-server and mlx_lm.server render them whatever tool_choice says);
    one that writes a call with no tools offered is at fault itself."""
    capability = "tool_choice_none"
    wrote = (
        "told not to call tools (tool_choice 'none'), the answer holds a tool call in content: "
        f"{excerpt(answer.content, 160)!r}"
    )
    plain = probe_prompts.weather(city, with_tools=False)
    exchange, bare = _ask(client, model, plain, timeout=timeout, max_tokens=DEFAULT_MAX_TOKENS)
    said = excerpt(bare.content, 200) if bare is not None else f"no answer (HTTP {exchange.status})"
    evidence.notes.append(f"the same question without tools got: {said!r}")
    if bare is None:
        reason = f"{wrote}; the check without tools got no answer, so the model is blamed"
        return _result(capability, Verdict.FAIL, reason, evidence, Attribution.MODEL)
    if bare.tool_calls or _leaked_markup(bare, ("get_weather",)) is not None:
        reason = f"{wrote}; it writes a call even when no tool is offered"
        return _result(capability, Verdict.FAIL, reason, evidence, Attribution.MODEL)
    reason = (
        f"{wrote}; asked without tools it answers in prose ({excerpt(bare.content, 80)!r}), "
        "so the server still showed the model its tools and did not parse the call"
    )
    return _result(capability, Verdict.FAIL, reason, evidence, Attribution.SERVER_ERROR)
