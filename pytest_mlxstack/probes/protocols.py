"""The agents' own protocols: the Responses API (Codex) and Anthropic Messages (Claude Code).

Each is one matrix cell per route, probed with the official client the agent itself uses
(``openai`` for ``/v1/responses``, ``anthropic`` for ``/v1/messages``), built from the same
base URL and key as the chat client. The probe walks what an agent session does, stopping at
the first step that fails: a plain answer (the exact count), a tool call with arguments valid
against the schema, the tool result sent back and used, the same count streamed (events
assembled equal the non-streamed answer), reasoning in its own items/blocks with no markup in
the text, and an unknown model answered in the protocol's own error shape.

Answers are converted to the chat probes' ``Answer`` so the same judges (count, tool call,
markup, thinking, budget) decide. A 404 for the served model is the route missing on the
server: ``fail`` attributed to the server, the 404 as evidence (docs/tiers.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from openai import OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict
from pytest_mlxstack.probes import budget
from pytest_mlxstack.probes.answer import Answer, ToolCall
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.capabilities import (
    UNKNOWN_MODEL,
    _judge_thinking,
    _leaked_markup,
    count_problem,
    draw,
    judge_calls,
)
from pytest_mlxstack.probes.exchange import (
    DEFAULT_TIMEOUT_S,
    TIMEOUT_ERRORS,
    TRANSPORT_ERRORS,
    Failure,
    classify,
    error_body,
    excerpt,
)

Judged = tuple[Attribution, str] | None
Send = Callable[[bool], tuple[Answer, int]]  # stream -> the answer and streamed event count

_FUNCTION = probe_prompts.WEATHER_TOOL["function"]
RESPONSES_TOOL: dict[str, Any] = {"type": "function", **_FUNCTION}
MESSAGES_TOOL: dict[str, Any] = {
    "name": _FUNCTION["name"],
    "description": _FUNCTION["description"],
    "input_schema": _FUNCTION["parameters"],
}
_MIN_EVENTS = 2


class _NoAnswer(Exception):
    """A step got no answer; carries the attributed failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class _Session:
    """The steps' evidence, and the failing step's verdict."""

    def __init__(self, capability: str, route_path: str, model: str) -> None:
        self.capability = capability
        self.route_path = route_path
        self.evidence = Evidence(request={"route": route_path, "model": model})
        self.started = time.monotonic()

    def step(
        self, name: str, answer: Answer, tokens: int, extra: dict[str, Any] | None = None
    ) -> None:
        self.evidence.request.setdefault("max_tokens", {})[name] = tokens
        shown = answer.evidence()
        shown.update(extra or {})
        self.evidence.response[name] = shown
        if answer.completion_tokens is not None:
            self.evidence.completion_tokens = (
                self.evidence.completion_tokens or 0
            ) + answer.completion_tokens

    def result(self, problem: Judged = None, step: str = "") -> ProbeResult:
        self.evidence.duration_s = round(time.monotonic() - self.started, 3)
        if step:
            self.evidence.response["failed_step"] = step
        if problem is None:
            return ProbeResult(self.capability, Verdict.PASS, evidence=self.evidence)
        return ProbeResult(
            self.capability,
            Verdict.FAIL,
            f"{self.route_path}, {step}: {problem[1]}",
            problem[0],
            self.evidence,
        )

    def no_answer(self, step: str, failure: Failure, *, first: bool) -> ProbeResult:
        self.evidence.response[step] = {"status": failure.status, "body": excerpt(failure.body)}
        if first and failure.status == 404:
            return self.result(
                (
                    Attribution.SERVER_ERROR,
                    f"the server has no {self.route_path} route (HTTP 404 for the served "
                    f"model: {excerpt(failure.body, 200)})",
                ),
                step,
            )
        return self.result((failure.attribution, failure.reason), step)


def _judge_text(answer: Answer, judge: Callable[[Answer], str | None], max_tokens: int) -> Judged:
    if answer.finish_reason == "length":
        return budget.exhausted(max_tokens, while_="reasoning" if answer.reasoning else "answering")
    leaked = _leaked_markup(answer)
    if leaked is not None:
        return leaked
    if not answer.content.strip():
        return Attribution.MODEL, "the answer has no text"
    problem = judge(answer)
    return None if problem is None else (Attribution.MODEL, problem)


def _walk(
    session: _Session,
    ask: Callable[[probe_prompts.ProbeCase, bool, int], tuple[Answer, int]],
    unknown: Callable[[], Failure | None],
    shape_problem: Callable[[str | None], str | None],
    *,
    max_tokens: int,
    count: int,
    city: str,
    declared: object | None,
) -> ProbeResult:
    """The agent's session, step by step; the first failing step decides the cell. The tool
    steps and the reasoning step are left out (and the evidence says so) when the catalog
    entry does not declare ``tool_calling`` / ``thinking``: the cell stays about the protocol."""
    text_budget = min(max_tokens, budget.tokens("text"))
    steps: list[tuple[str, probe_prompts.ProbeCase, bool, int]] = [
        ("text", probe_prompts.count_to(count), False, text_budget),
        ("tool call", probe_prompts.weather(city), False, text_budget),
        ("tool result", probe_prompts.weather_result(city), False, text_budget),
        ("streamed text", probe_prompts.count_to(count), True, text_budget),
        ("reasoning", probe_prompts.THINKING, False, max_tokens),
    ]
    for flag, left_out in (
        ("tool_calling", ("tool call", "tool result")),
        ("thinking", ("reasoning",)),
    ):
        if declared is not None and not getattr(declared, flag, False):
            steps = [step for step in steps if step[0] not in left_out]
            session.evidence.notes.append(
                f"not probed: {' and '.join(left_out)} (the catalog entry does not declare {flag})"
            )
    answers: dict[str, Answer] = {}
    for index, (step, case, stream, tokens) in enumerate(steps):
        try:
            answer, events = ask(case, stream, tokens)
        except _NoAnswer as no:
            return session.no_answer(step, no.failure, first=index == 0)
        session.step(step, answer, tokens, {"events": events} if stream else None)
        answers[step] = answer
        problem = _judge_step(step, answer, answers, tokens, count=count, city=city)
        if stream and problem is None and events < _MIN_EVENTS:
            problem = (
                Attribution.SERVER_ERROR,
                f"the answer came in {events} event(s), not streamed",
            )
        if problem is not None:
            return session.result(problem, step)
        session.evidence.response.setdefault("steps_passed", []).append(step)
    failure = unknown()
    step = "unknown model"
    session.evidence.notes.append(f"asked for {UNKNOWN_MODEL!r} on the same route")
    if failure is None:
        return session.result(
            (
                Attribution.SERVER_ERROR,
                f"a request for {UNKNOWN_MODEL!r} was answered, not refused",
            ),
            step,
        )
    session.evidence.response[step] = {"status": failure.status, "body": excerpt(failure.body)}
    if failure.status is None or failure.status >= 500:
        return session.result((failure.attribution, failure.reason), step)
    shape = shape_problem(failure.body)
    if shape is not None:
        return session.result(
            (Attribution.SERVER_ERROR, f"HTTP {failure.status}, but {shape}"), step
        )
    return session.result()


def _judge_step(
    step: str,
    answer: Answer,
    answers: dict[str, Answer],
    max_tokens: int,
    *,
    count: int,
    city: str,
) -> Judged:
    if step == "text":
        return _judge_text(answer, lambda a: count_problem(a.content, count), max_tokens)
    if step == "tool call":
        return judge_calls(answer, [probe_prompts.WEATHER_TOOL], [("get_weather", city)])
    if step == "tool result":
        if answer.tool_calls:
            return Attribution.MODEL, "given the tool's result, the model called a tool again"

        def used(a: Answer) -> str | None:
            if city.lower() in a.content.lower() and "21" in a.content:
                return None
            return (
                f"the answer {excerpt(a.content, 120)!r} does not use the tool result "
                f"('sunny, 21 celsius' for {city})"
            )

        return _judge_text(answer, used, max_tokens)
    if step == "streamed text":
        problem = _judge_text(answer, lambda a: count_problem(a.content, count), max_tokens)
        if problem is not None:
            return problem
        whole = answers["text"].content
        if answer.content != whole:
            return Attribution.SERVER_ERROR, (
                f"the assembled streamed text {excerpt(answer.content, 120)!r} differs from the "
                f"non-streamed answer {excerpt(whole, 120)!r} under greedy decoding"
            )
        return None
    return _judge_thinking(answer, max_tokens)


def _drawn_walk(
    session: _Session,
    ask: Callable[[probe_prompts.ProbeCase, bool, int], tuple[Answer, int]],
    unknown: Callable[[], Failure | None],
    shape_problem: Callable[[str | None], str | None],
    max_tokens: int,
    count: int | None,
    city: str | None,
    declared: object | None,
) -> ProbeResult:
    """``_walk`` with the count and city drawn for this run unless the caller gave them."""
    return _walk(
        session,
        ask,
        unknown,
        shape_problem,
        max_tokens=max_tokens,
        count=count
        if count is not None
        else draw([c for c in probe_prompts.COUNT_TARGETS if c >= 5])[0],
        city=city if city is not None else draw(probe_prompts.CITIES)[0],
        declared=declared,
    )


def _openai_shape(body: str | None) -> str | None:
    try:
        data = json.loads(body or "")
    except ValueError:
        return f"the body is not JSON ({excerpt(body, 120)!r})"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return None
    shown = excerpt(body, 160)
    return f'the body is not the OpenAI error shape {{"error": {{"message": ...}}}} ({shown})'


def _anthropic_shape(body: str | None) -> str | None:
    try:
        data = json.loads(body or "")
    except ValueError:
        return f"the body is not JSON ({excerpt(body, 120)!r})"
    error = data.get("error") if isinstance(data, dict) else None
    if (
        isinstance(data, dict)
        and data.get("type") == "error"
        and isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
    ):
        return None
    return (
        'the body is not the Anthropic error shape {"type": "error", "error": {"type": ..., '
        f'"message": ...}}}} ({excerpt(body, 160)})'
    )


# ---- Responses API (openai) ------------------------------------------------------------


def _responses_input(case: probe_prompts.ProbeCase) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in case.messages:
        if message["role"] == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message["tool_call_id"],
                    "output": message["content"],
                }
            )
        elif message.get("tool_calls"):
            for call in message["tool_calls"]:
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"],
                    }
                )
        else:
            items.append({"role": message["role"], "content": message["content"]})
    return items


def _from_response(response: Any) -> Answer:
    answer = Answer()
    reasoning: list[str] = []
    texts: list[str] = []
    for item in response.output or []:
        kind = getattr(item, "type", None)
        if kind == "message":
            texts += [part.text for part in item.content if getattr(part, "text", None)]
        elif kind == "reasoning":
            parts = list(getattr(item, "content", None) or []) + list(item.summary or [])
            reasoning += [part.text for part in parts if getattr(part, "text", None)]
        elif kind == "function_call":
            answer.tool_calls.append(ToolCall(item.name, item.arguments, item.call_id))
    answer.content = "".join(texts)
    if reasoning:
        answer.reasoning, answer.reasoning_field = "".join(reasoning), "reasoning item"
    details = getattr(response, "incomplete_details", None)
    if response.status == "incomplete" and getattr(details, "reason", "") == "max_output_tokens":
        answer.finish_reason = "length"
    elif answer.tool_calls:
        answer.finish_reason = "tool_calls"
    else:
        answer.finish_reason = response.status
    if response.usage is not None:
        answer.prompt_tokens = response.usage.input_tokens
        answer.completion_tokens = response.usage.output_tokens
    return answer


def _responses_ask(client: OpenAI, model: str, timeout: float) -> Any:
    quiet = client.with_options(timeout=timeout, max_retries=0)

    def ask(case: probe_prompts.ProbeCase, stream: bool, tokens: int) -> tuple[Answer, int]:
        params: dict[str, Any] = {
            "model": model,
            "input": _responses_input(case),
            "max_output_tokens": tokens,
            "temperature": 0,
        }
        if case.tools:
            params["tools"] = [RESPONSES_TOOL]
        try:
            if not stream:
                return _from_response(quiet.responses.create(**params)), 0
            events = 0
            final = None
            with quiet.responses.create(stream=True, **params) as stream_events:
                for event in stream_events:
                    events += event.type.endswith(".delta")
                    if event.type in ("response.completed", "response.incomplete"):
                        final = event.response
            if final is None:
                raise _NoAnswer(
                    Failure(Attribution.SERVER_ERROR, "the stream ended without response.completed")
                )
            return _from_response(final), events
        except _NoAnswer:
            raise
        except Exception as exc:
            raise _NoAnswer(classify(exc, timeout=timeout)) from None

    def unknown() -> Failure | None:
        try:
            quiet.responses.create(model=UNKNOWN_MODEL, input="Say hello.", max_output_tokens=8)
        except Exception as exc:
            return classify(exc, timeout=timeout)
        return None

    return ask, unknown


@probes("responses_api")
def probe_responses_api(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = budget.BASE_BUDGETS["thinking"],
    count: int | None = None,
    city: str | None = None,
    declared: object | None = None,
) -> ProbeResult:
    """What Codex does over ``/v1/responses`` with the ``openai`` client."""
    ask, unknown = _responses_ask(client, model, timeout)
    session = _Session("responses_api", "/v1/responses", model)
    return _drawn_walk(session, ask, unknown, _openai_shape, max_tokens, count, city, declared)


# ---- Anthropic Messages (anthropic) ----------------------------------------------------


def _messages_of(case: probe_prompts.ProbeCase) -> tuple[str | None, list[dict[str, Any]]]:
    system = None
    messages: list[dict[str, Any]] = []
    for message in case.messages:
        if message["role"] == "system":
            system = message["content"]
        elif message["role"] == "tool":
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": message["tool_call_id"],
                            "content": message["content"],
                        }
                    ],
                }
            )
        elif message.get("tool_calls"):
            blocks = [
                {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "input": json.loads(call["function"]["arguments"]),
                }
                for call in message["tool_calls"]
            ]
            messages.append({"role": "assistant", "content": blocks})
        else:
            messages.append({"role": message["role"], "content": message["content"]})
    return system, messages


def _from_message(message: Any) -> Answer:
    answer = Answer()
    texts: list[str] = []
    thinking: list[str] = []
    for block in message.content or []:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "thinking":
            thinking.append(block.thinking)
        elif block.type == "tool_use":
            arguments = json.dumps(block.input)
            answer.tool_calls.append(ToolCall(block.name, arguments, block.id))
    answer.content = "".join(texts)
    if thinking:
        answer.reasoning, answer.reasoning_field = "".join(thinking), "thinking block"
    stop = message.stop_reason
    answer.finish_reason = {"max_tokens": "length", "tool_use": "tool_calls"}.get(stop, stop)
    if message.usage is not None:
        answer.prompt_tokens = message.usage.input_tokens
        answer.completion_tokens = message.usage.output_tokens
    return answer


def classify_anthropic(exc: BaseException, *, timeout: float) -> Failure:
    """``exchange.classify`` for the ``anthropic`` client's exceptions."""
    import anthropic

    if isinstance(exc, (anthropic.APITimeoutError, *TIMEOUT_ERRORS)):
        return Failure(Attribution.TIMEOUT, f"no answer within {timeout:g} s")
    if isinstance(exc, (anthropic.APIConnectionError, *TRANSPORT_ERRORS)):
        cause = exc.__cause__ or exc.__context__ or exc
        return Failure(
            Attribution.SERVER_DOWN,
            f"the connection failed: {type(cause).__name__}: {excerpt(cause, 200)}",
        )
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        body = error_body(exc)
        attribution = Attribution.SERVER_ERROR if status >= 500 else Attribution.CLIENT
        return Failure(
            attribution, f"the server answered HTTP {status}: {excerpt(body, 300)}", status, body
        )
    return Failure(
        Attribution.CLIENT,
        f"the anthropic client could not handle the answer: {type(exc).__name__}: "
        f"{excerpt(exc, 300)}",
    )


def anthropic_client(client: OpenAI, timeout: float) -> Any:
    """An ``anthropic.Anthropic`` for the same server and key as ``client`` (its base URL
    without ``/v1``, as ``ANTHROPIC_BASE_URL`` is given to Claude Code)."""
    import anthropic

    base = str(client.base_url).rstrip("/")
    base = base[: -len("/v1")] if base.endswith("/v1") else base
    return anthropic.Anthropic(
        base_url=base, api_key=client.api_key, timeout=timeout, max_retries=0
    )


def _messages_ask(client: OpenAI, model: str, timeout: float) -> Any:
    claude = anthropic_client(client, timeout)

    def ask(case: probe_prompts.ProbeCase, stream: bool, tokens: int) -> tuple[Answer, int]:
        system, messages = _messages_of(case)
        params: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": tokens,
            "extra_body": {"temperature": 0},
        }
        if system is not None:
            params["system"] = system
        if case.tools:
            params["tools"] = [MESSAGES_TOOL]
        try:
            if not stream:
                return _from_message(claude.messages.create(**params)), 0
            events = 0
            with claude.messages.stream(**params) as stream_events:
                for event in stream_events:
                    events += event.type == "content_block_delta"
                final = stream_events.get_final_message()
            return _from_message(final), events
        except Exception as exc:
            raise _NoAnswer(classify_anthropic(exc, timeout=timeout)) from None

    def unknown() -> Failure | None:
        try:
            claude.messages.create(
                model=UNKNOWN_MODEL,
                max_tokens=8,
                messages=[{"role": "user", "content": "Say hello."}],
            )
        except Exception as exc:
            return classify_anthropic(exc, timeout=timeout)
        return None

    return ask, unknown


@probes("messages_api")
def probe_messages_api(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = budget.BASE_BUDGETS["thinking"],
    count: int | None = None,
    city: str | None = None,
    declared: object | None = None,
) -> ProbeResult:
    """What Claude Code does over ``/v1/messages`` with the ``anthropic`` client."""
    ask, unknown = _messages_ask(client, model, timeout)
    session = _Session("messages_api", "/v1/messages", model)
    return _drawn_walk(session, ask, unknown, _anthropic_shape, max_tokens, count, city, declared)


__all__ = ["classify_anthropic", "probe_messages_api", "probe_responses_api"]
