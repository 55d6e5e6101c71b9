"""One probe per capability: send a built-in chat, judge the answer's shape, keep the evidence.

Real models are judged by shape (a tool call with the asked city, reasoning present, the name
from the history used); the fixture model's exact answers (``probe_prompts``) only let tests
assert exact evidence. Decoding is greedy and bounded so that verdicts are repeatable.

Attribution of a failed answer: markup left in ``content`` is the parser's fault; a
well-formed answer without the capability is the model's; transport and HTTP failures are
attributed by ``exchange.classify``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openai import OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict
from pytest_mlxstack.probes.answer import Answer, from_chunks, from_completion
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.exchange import DEFAULT_TIMEOUT_S, Exchange, chat, excerpt
from pytest_mlxstack.probes.markup import think_markup, tool_markup
from pytest_mlxstack.probes.schema_check import schema_problems

DEFAULT_MAX_TOKENS = 512
THINKING_MAX_TOKENS = 1024
UNKNOWN_MODEL = "mlxstack-probe-no-such-model"
MIN_STREAM_CHUNKS = 2
# How a pirate says hello; the fixture model says "Ahoy, matey!".
_PIRATE = re.compile(r"\b(ahoy|matey|mateys|arr+|aye|avast|ye|yer|hearties|shiver)\b", re.I)


def _evidence(exchange: Exchange, answer: Answer | None, notes: list[str]) -> Evidence:
    response: dict[str, Any] = {"status": exchange.status}
    if answer is not None:
        response.update(answer.evidence())
    elif exchange.failure is not None and exchange.failure.body is not None:
        response["body"] = excerpt(exchange.failure.body)
    return Evidence(
        request=exchange.request,
        response=response,
        duration_s=exchange.duration_s,
        prompt_tokens=answer.prompt_tokens if answer else None,
        completion_tokens=answer.completion_tokens if answer else None,
        notes=notes,
    )


def _result(
    capability: str,
    verdict: Verdict,
    reason: str,
    evidence: Evidence,
    attribution: Attribution | None = None,
) -> ProbeResult:
    return ProbeResult(
        capability=capability,
        verdict=verdict,
        reason=reason,
        attribution=attribution if verdict is Verdict.FAIL else None,
        evidence=evidence,
    )


def _ask(
    client: OpenAI,
    model: str,
    case: probe_prompts.ProbeCase,
    *,
    timeout: float,
    max_tokens: int,
    stream: bool = False,
) -> tuple[Exchange, Answer | None]:
    params: dict[str, Any] = {"max_tokens": max_tokens}
    if case.tools:
        params["tools"] = case.tools
    exchange = chat(client, model, case.messages, timeout=timeout, stream=stream, **params)
    if exchange.failure is not None:
        return exchange, None
    if stream:
        return exchange, from_chunks(exchange.chunks)
    assert exchange.completion is not None
    return exchange, from_completion(exchange.completion)


def _failed_exchange(capability: str, exchange: Exchange, evidence: Evidence) -> ProbeResult:
    """The FAIL for a request that got no answer, attributed by ``exchange.classify``."""
    assert exchange.failure is not None
    return _result(
        capability, Verdict.FAIL, exchange.failure.reason, evidence, exchange.failure.attribution
    )


def _ask_once(
    capability: str,
    client: OpenAI,
    model: str,
    case: probe_prompts.ProbeCase,
    *,
    timeout: float,
    max_tokens: int,
) -> tuple[Answer, Evidence] | ProbeResult:
    """One non-streamed chat: its answer and evidence, or the FAIL when no answer came."""
    exchange, answer = _ask(client, model, case, timeout=timeout, max_tokens=max_tokens)
    if answer is None:
        return _failed_exchange(capability, exchange, _evidence(exchange, None, []))
    return answer, _evidence(exchange, answer, [])


@dataclass
class _StreamedPair:
    """A streamed answer next to its non-streamed (greedy) reference, with the evidence of both."""

    streamed: Answer
    reference: Answer | None
    reference_exchange: Exchange
    evidence: Evidence

    def reference_failed(self, capability: str) -> ProbeResult:
        """The FAIL for a reference request that got no answer."""
        failure = self.reference_exchange.failure
        assert failure is not None
        return _result(
            capability,
            Verdict.FAIL,
            f"the non-streamed reference request failed: {failure.reason}",
            self.evidence,
            failure.attribution,
        )


def _ask_streamed_pair(
    capability: str,
    client: OpenAI,
    model: str,
    case: probe_prompts.ProbeCase,
    *,
    timeout: float,
    max_tokens: int,
) -> _StreamedPair | ProbeResult:
    """The same chat non-streamed, then streamed; the FAIL when the stream brought no answer.

    A failed reference is left to the probe (``reference_failed``): some judge the streamed
    answer first.
    """
    reference, whole = _ask(client, model, case, timeout=timeout, max_tokens=max_tokens)
    streamed, parts = _ask(client, model, case, timeout=timeout, max_tokens=max_tokens, stream=True)
    evidence = _paired_evidence(streamed, parts, reference, whole, [])
    if parts is None:
        return _failed_exchange(capability, streamed, evidence)
    return _StreamedPair(parts, whole, reference, evidence)


def _leaked_markup(answer: Answer, tool_names: tuple[str, ...] = ()) -> str | None:
    """A parser failure sentence when tool or think markup was left in ``content``."""
    tools = tool_markup(answer.content, tool_names)
    if tools:
        return (
            f"tool-call markup {', '.join(repr(m) for m in tools)} was left in content instead "
            f"of structured tool_calls (the server's tool-call parser did not read it)"
        )
    think = think_markup(answer.content)
    if think:
        return (
            f"reasoning markup {', '.join(repr(m) for m in think)} was left in content "
            f"(the server's reasoning parser did not split it out)"
        )
    return None


def _text_probe(
    capability: str,
    client: OpenAI,
    model: str,
    case: probe_prompts.ProbeCase,
    *,
    timeout: float,
    max_tokens: int,
    judge: Callable[[Answer], str | None],
) -> ProbeResult:
    asked = _ask_once(capability, client, model, case, timeout=timeout, max_tokens=max_tokens)
    if isinstance(asked, ProbeResult):
        return asked
    answer, evidence = asked
    leaked = _leaked_markup(answer)
    if not answer.content.strip() and leaked is None:
        why = "the answer has no text"
        if answer.finish_reason == "length":
            why += f" (it stopped at max_tokens={max_tokens}"
            why += ", all of it reasoning)" if answer.reasoning else ")"
        return _result(capability, Verdict.FAIL, why, evidence, Attribution.MODEL)
    problem = judge(answer)
    if problem is None:
        if case.expected_content is not None and answer.content == case.expected_content:
            evidence.notes.append("the answer equals the fixture model's trained answer")
        return _result(capability, Verdict.PASS, "", evidence)
    if leaked is not None:
        return _result(capability, Verdict.FAIL, leaked, evidence, Attribution.PARSER)
    return _result(capability, Verdict.FAIL, problem, evidence, Attribution.MODEL)


@probes("inference")
def probe_inference(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ProbeResult:
    """A plain chat completion returns text."""
    return _text_probe(
        "inference",
        client,
        model,
        probe_prompts.GREETING,
        timeout=timeout,
        max_tokens=max_tokens,
        judge=lambda answer: None,
    )


@probes("system_prompt")
def probe_system_prompt(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ProbeResult:
    """Told to be a pirate by the system message, the model greets like one."""

    def judge(answer: Answer) -> str | None:
        if _PIRATE.search(answer.content):
            return None
        return (
            "the answer ignores the system message (asked to answer like a pirate, it "
            f"said {excerpt(answer.content, 120)!r})"
        )

    return _text_probe(
        "system_prompt",
        client,
        model,
        probe_prompts.SYSTEM_PROMPT,
        timeout=timeout,
        max_tokens=max_tokens,
        judge=judge,
    )


@probes("multi_turn")
def probe_multi_turn(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    name: str = probe_prompts.NAMES[0],
) -> ProbeResult:
    """Asked "What is my name?", the model answers with the name given two turns earlier."""

    def judge(answer: Answer) -> str | None:
        if name.lower() in answer.content.lower():
            return None
        return (
            f"the answer does not use the history: the name {name!r} from the first turn is "
            f"missing from {excerpt(answer.content, 120)!r}"
        )

    return _text_probe(
        "multi_turn",
        client,
        model,
        probe_prompts.multi_turn(name),
        timeout=timeout,
        max_tokens=max_tokens,
        judge=judge,
    )


@probes("streaming")
def probe_streaming(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count: int = probe_prompts.COUNT_TARGETS[-1],
) -> ProbeResult:
    """The answer arrives in several chunks that add up to the non-streamed (greedy) answer."""
    capability = "streaming"
    case = probe_prompts.count_to(count)
    pair = _ask_streamed_pair(
        capability, client, model, case, timeout=timeout, max_tokens=max_tokens
    )
    if isinstance(pair, ProbeResult):
        return pair
    if pair.reference is None:
        return pair.reference_failed(capability)
    parts, whole, evidence = pair.streamed, pair.reference, pair.evidence
    if not parts.content.strip():
        misfiled = (parts.reasoning or "").strip()
        if misfiled and misfiled == whole.content.strip():
            return _result(
                capability,
                Verdict.FAIL,
                "the streamed answer arrived as reasoning, not content, although the same text "
                "is content when not streamed (the server's reasoning parser takes untagged "
                "streamed text for reasoning)",
                evidence,
                Attribution.PARSER,
            )
        return _result(
            capability, Verdict.FAIL, "the stream carried no text", evidence, Attribution.MODEL
        )
    if parts.content_chunks < MIN_STREAM_CHUNKS:
        return _result(
            capability,
            Verdict.FAIL,
            f"the answer came in {parts.content_chunks} content chunk(s), not streamed "
            f"token by token",
            evidence,
            Attribution.SERVER_ERROR,
        )
    if parts.finish_reason is None:
        return _result(
            capability,
            Verdict.FAIL,
            "the stream ended without a finish_reason",
            evidence,
            Attribution.SERVER_ERROR,
        )
    if parts.content != whole.content:
        return _result(
            capability,
            Verdict.FAIL,
            f"the streamed text {excerpt(parts.content, 120)!r} differs from the non-streamed "
            f"answer {excerpt(whole.content, 120)!r} under greedy decoding",
            evidence,
            Attribution.SERVER_ERROR,
        )
    return _result(capability, Verdict.PASS, "", evidence)


def _paired_evidence(
    streamed: Exchange,
    parts: Answer | None,
    reference: Exchange,
    whole: Answer | None,
    notes: list[str],
) -> Evidence:
    """Evidence of a streamed request next to its non-streamed reference."""
    main = _evidence(streamed, parts, notes)
    other = _evidence(reference, whole, [])
    main.response = {"streamed": main.response, "non_streamed": other.response}
    main.duration_s = round((main.duration_s or 0.0) + (other.duration_s or 0.0), 3)
    return main


def _judge_tool_call(
    answer: Answer, case: probe_prompts.ProbeCase, city: str
) -> tuple[Attribution, str] | None:
    """Whose fault it is that ``answer`` is not a good ``get_weather`` call, or None."""
    tool = probe_prompts.WEATHER_TOOL["function"]
    if not answer.tool_calls:
        leaked = _leaked_markup(answer, (tool["name"],))
        if leaked is not None:
            return Attribution.PARSER, leaked
        in_reasoning = tool_markup(answer.reasoning, (tool["name"],))
        if in_reasoning:
            return Attribution.PARSER, (
                f"tool-call markup {', '.join(repr(m) for m in in_reasoning)} ended up in the "
                f"reasoning instead of structured tool_calls (the server's parsers did not "
                f"read it)"
            )
        said = excerpt(answer.content, 160)
        return Attribution.MODEL, f"the model answered in prose instead of calling a tool: {said!r}"
    call = next((c for c in answer.tool_calls if c.name == tool["name"]), None)
    if call is None:
        names = ", ".join(repr(c.name) for c in answer.tool_calls)
        return Attribution.MODEL, f"the model called {names}, not {tool['name']!r}"
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        return Attribution.PARSER, (
            f"the tool call's arguments are not JSON: {excerpt(call.arguments, 160)!r} (the "
            f"parser passed through text it should have rejected)"
        )
    problems = schema_problems(arguments, tool["parameters"])
    if problems:
        return Attribution.MODEL, "the arguments do not match the tool's schema: " + "; ".join(
            problems
        )
    location = str(arguments.get("location", ""))
    if city.lower() not in location.lower():
        return Attribution.MODEL, (
            f"asked about {city}, the model called {tool['name']} with location {location!r}"
        )
    if answer.finish_reason != "tool_calls":
        return Attribution.PARSER, (
            f"finish_reason is {answer.finish_reason!r}, not 'tool_calls', although the answer "
            f"is a tool call"
        )
    return None


@probes("tool_calling")
def probe_tool_calling(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str = probe_prompts.CITIES[0],
) -> ProbeResult:
    """Asked about the weather with a ``get_weather`` tool offered, the model calls it."""
    capability = "tool_calling"
    case = probe_prompts.weather(city)
    asked = _ask_once(capability, client, model, case, timeout=timeout, max_tokens=max_tokens)
    if isinstance(asked, ProbeResult):
        return asked
    answer, evidence = asked
    problem = _judge_tool_call(answer, case, city)
    if problem is not None:
        return _result(capability, Verdict.FAIL, problem[1], evidence, problem[0])
    return _result(capability, Verdict.PASS, "", evidence)


@probes("tool_calling_streaming")
def probe_tool_calling_streaming(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str = probe_prompts.CITIES[0],
) -> ProbeResult:
    """The same tool call through streaming: deltas assemble into the non-streamed call."""
    capability = "tool_calling_streaming"
    case = probe_prompts.weather(city)
    pair = _ask_streamed_pair(
        capability, client, model, case, timeout=timeout, max_tokens=max_tokens
    )
    if isinstance(pair, ProbeResult):
        return pair
    parts, whole, evidence = pair.streamed, pair.reference, pair.evidence
    problem = _judge_tool_call(parts, case, city)
    if problem is not None:
        return _result(capability, Verdict.FAIL, f"streamed: {problem[1]}", evidence, problem[0])
    if whole is None:
        return pair.reference_failed(capability)
    reference_problem = _judge_tool_call(whole, case, city)
    if reference_problem is not None:
        evidence.notes.append(f"non-streamed: {reference_problem[1]}")
        return _result(
            capability,
            Verdict.FAIL,
            "the streamed tool call is right but the non-streamed one is not, so they differ: "
            + reference_problem[1],
            evidence,
            reference_problem[0],
        )
    mismatch = _call_mismatch(parts, whole)
    if mismatch is not None:
        return _result(capability, Verdict.FAIL, mismatch, evidence, Attribution.PARSER)
    return _result(capability, Verdict.PASS, "", evidence)


def _call_mismatch(streamed: Answer, whole: Answer) -> str | None:
    """How the assembled streamed tool calls differ from the non-streamed ones, if they do."""
    left = [(c.name, _parsed(c.arguments)) for c in streamed.tool_calls]
    right = [(c.name, _parsed(c.arguments)) for c in whole.tool_calls]
    if left == right:
        return None
    return (
        f"the streamed tool calls {excerpt(json.dumps(left), 200)} differ from the "
        f"non-streamed ones {excerpt(json.dumps(right), 200)}"
    )


def _parsed(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


@probes("thinking")
def probe_thinking(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = THINKING_MAX_TOKENS,
) -> ProbeResult:
    """Reasoning arrives in ``reasoning_content``, apart from a final answer without markup."""
    capability = "thinking"
    case = probe_prompts.THINKING
    asked = _ask_once(capability, client, model, case, timeout=timeout, max_tokens=max_tokens)
    if isinstance(asked, ProbeResult):
        return asked
    answer, evidence = asked
    markup = think_markup(answer.content)
    if markup:
        return _result(
            capability,
            Verdict.FAIL,
            f"reasoning markup {', '.join(repr(m) for m in markup)} was left in content "
            f"(the server's reasoning parser did not split it out)",
            evidence,
            Attribution.PARSER,
        )
    if not (answer.reasoning or "").strip():
        return _result(
            capability,
            Verdict.FAIL,
            "the model answered without reasoning: no reasoning_content and no <think> markup "
            f"(content {excerpt(answer.content, 120)!r})",
            evidence,
            Attribution.MODEL,
        )
    if not answer.content.strip():
        why = "the model reasoned but gave no final answer"
        if answer.finish_reason == "length":
            why += f" (it stopped at max_tokens={max_tokens} while reasoning)"
        return _result(capability, Verdict.FAIL, why, evidence, Attribution.MODEL)
    if "1081" not in answer.content:
        evidence.notes.append("the final answer does not contain the product 1081")
    return _result(capability, Verdict.PASS, "", evidence)


@probes("errors")
def probe_errors(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    unknown_model: str = UNKNOWN_MODEL,
) -> ProbeResult:
    """A request for a model nobody serves gets a 4xx in OpenAI's error shape, at once.

    ``model`` (a served name) is kept in the evidence only: the probe asks for
    ``unknown_model`` on the same endpoint.
    """
    capability = "errors"
    exchange = chat(
        client, unknown_model, probe_prompts.GREETING.messages, timeout=timeout, max_tokens=8
    )
    notes = [f"asked for {unknown_model!r} on the endpoint serving {model!r}"]
    evidence = _evidence(exchange, None, notes)
    failure = exchange.failure
    if failure is None:
        evidence.response["content"] = excerpt(
            exchange.completion.choices[0].message.content
            if exchange.completion and exchange.completion.choices
            else None
        )
        return _result(
            capability,
            Verdict.FAIL,
            f"the server answered a request for the unknown model {unknown_model!r} with "
            f"HTTP {exchange.status} instead of a 4xx error",
            evidence,
            Attribution.SERVER_ERROR,
        )
    if failure.status is None or failure.status >= 500:
        return _result(capability, Verdict.FAIL, failure.reason, evidence, failure.attribution)
    shape = _openai_error_shape_problem(failure.body)
    if shape is not None:
        return _result(
            capability,
            Verdict.FAIL,
            f"the server answered HTTP {failure.status}, but {shape}",
            evidence,
            Attribution.SERVER_ERROR,
        )
    return _result(capability, Verdict.PASS, "", evidence)


def _openai_error_shape_problem(body: str | None) -> str | None:
    """Why ``body`` is not ``{"error": {"message": ..., "type": ...}}``, or None."""
    try:
        data = json.loads(body or "")
    except ValueError:
        return f"the body is not JSON ({excerpt(body, 120)!r})"
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return (
            'the body is not in the OpenAI error shape {"error": {"message": ...}} '
            f"({excerpt(body, 160)})"
        )
    return None
