"""One probe per capability: send a built-in chat, judge the answer's shape, keep the evidence.

Answers are judged on what they say, not only on their shape: a count must be exact, a name
from the history must come back, a tool call must name the asked city. The variable parts
(the number to count to, the names, the city) are drawn anew on every run, so that a model
that learned one answer by heart does not pass. The fixture model's exact answers
(``probe_prompts``) only let tests assert exact evidence. Decoding is greedy and bounded so
that verdicts are repeatable.

Attribution of a failed answer (the table is in docs/tiers.md): markup left in ``content`` is
the parser's fault, whatever the rest of the answer; a well-formed answer without the
capability is the model's; where a client cannot tell the two apart (tool-call arguments that
came back empty) the attribution is ``model_or_parser``; transport and HTTP failures are
attributed by ``exchange.classify``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from openai import OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict
from pytest_mlxstack.probes import budget
from pytest_mlxstack.probes.answer import Answer, ToolCall, from_chunks, from_completion
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.exchange import DEFAULT_TIMEOUT_S, Exchange, chat, excerpt
from pytest_mlxstack.probes.markup import malformed_tool_call, think_markup, tool_markup
from pytest_mlxstack.probes.schema_check import schema_problems

DEFAULT_MAX_TOKENS = 512
THINKING_MAX_TOKENS = 1024
UNKNOWN_MODEL = "mlxstack-probe-no-such-model"
MIN_STREAM_CHUNKS = 2
# How a pirate says hello; the fixture model says "Ahoy, matey!".
_PIRATE = re.compile(r"\b(ahoy|matey|mateys|arr+|aye|avast|ye|yer|hearties|shiver)\b", re.I)
_DRAW = random.SystemRandom()
THINKING_ANSWER = "1081"  # 23 * 47


def draw(pool: Sequence[Any], k: int = 1) -> list[Any]:
    """``k`` distinct items of ``pool``, drawn anew on every call (every run)."""
    return _DRAW.sample(list(pool), k)


def count_problem(text: str, n: int) -> str | None:
    """Why ``text`` is not a count from 1 to ``n`` (the numbers in it, in order), or None."""
    numbers = [int(number) for number in re.findall(r"\d+", text)]
    if numbers == list(range(1, n + 1)):
        return None
    return (
        f"asked to count to {n}, the model answered {excerpt(text, 120)!r}, not the numbers 1 "
        f"to {n} in order"
    )


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
    extra: dict[str, Any] | None = None,
) -> tuple[Exchange, Answer | None]:
    params: dict[str, Any] = {"max_tokens": max_tokens}
    if case.tools:
        params["tools"] = case.tools
    params.update(extra or {})
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


def refused_parameter(exchange: Exchange, parameter: str) -> tuple[Attribution, str] | None:
    """A 4xx for a request that is right but for one API parameter (``tool_choice``,
    ``response_format``) is the server's: it does not support what the API allows. A missing
    key or model (401, 403, 404) stays the client's, as ``exchange.classify`` says."""
    failure = exchange.failure
    if failure is None or failure.status is None or not 400 <= failure.status < 500:
        return None
    if failure.status in (401, 403, 404):
        return None
    return Attribution.SERVER_ERROR, (
        f"the server refused {parameter} with HTTP {failure.status} "
        f"({excerpt(failure.body, 200)}), although the API allows it"
    )


def _ask_once(
    capability: str,
    client: OpenAI,
    model: str,
    case: probe_prompts.ProbeCase,
    *,
    timeout: float,
    max_tokens: int,
    extra: dict[str, Any] | None = None,
) -> tuple[Answer, Evidence] | ProbeResult:
    """One non-streamed chat: its answer and evidence, or the FAIL when no answer came."""
    exchange, answer = _ask(
        client, model, case, timeout=timeout, max_tokens=max_tokens, extra=extra
    )
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


def _leaked_markup(
    answer: Answer, tool_names: tuple[str, ...] = ()
) -> tuple[Attribution, str] | None:
    """Whose fault it is that tool or think markup is in ``content``, and why; None if clean.

    A ``<think>`` the model never closed is the model's: no reasoning parser can split a block
    that has no end (it stops at max_tokens, or the model forgot the tag). Any other markup
    is the parser's: the model wrote it well and the server did not read it.
    """
    tools = tool_markup(answer.content, tool_names)
    broken = malformed_tool_call(answer.content)
    if broken is not None:
        return Attribution.MODEL, (
            f"the model wrote a malformed tool call in content ({excerpt(broken, 120)!r} is "
            f"not JSON), which no tool-call parser can read"
        )
    if tools:
        return Attribution.PARSER, (
            f"tool-call markup {', '.join(repr(m) for m in tools)} was left in content instead "
            f"of structured tool_calls (the server's tool-call parser did not read it)"
        )
    think = think_markup(answer.content)
    if not think:
        return None
    shown = ", ".join(repr(m) for m in think)
    opened = any(m in answer.content for m in ("<think>", "<thinking>"))
    closed = any(m in answer.content for m in ("</think>", "</thinking>"))
    if opened and not closed:
        if answer.finish_reason == "length":
            return budget.exhausted(
                answer.completion_tokens, while_=f"reasoning (an unclosed {shown} in content)"
            )
        return Attribution.MODEL, (
            f"the model opened a think block ({shown}) and never closed it, so no reasoning "
            f"parser can split it out of content"
        )
    return Attribution.PARSER, (
        f"reasoning markup {shown} was left in content (the server's reasoning parser did not "
        f"split it out)"
    )


def _cut_or_leaked(answer: Answer, max_tokens: int | None) -> tuple[Attribution, str] | None:
    """Markup the parser missed is the parser's even in a cut answer (it was written whole);
    otherwise an answer cut by its budget is the budget's, whatever else is wrong with it (an
    unclosed think block, a call cut short, no text yet), never the model's."""
    leaked = _leaked_markup(answer)
    if leaked is not None and leaked[0] is not Attribution.MODEL:
        return leaked
    if answer.finish_reason == "length":
        return budget.exhausted(max_tokens, while_="reasoning" if answer.reasoning else "answering")
    return leaked


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
    return _judged_text(capability, answer, evidence, max_tokens=max_tokens, judge=judge)


def _judged_text(
    capability: str,
    answer: Answer,
    evidence: Evidence,
    *,
    max_tokens: int,
    judge: Callable[[Answer], str | None],
) -> ProbeResult:
    """Markup the parser missed fails first (whatever the judge says), then an answer cut by
    its budget (not judged: it is incomplete), then no text, then the judge."""
    blamed = _cut_or_leaked(answer, max_tokens)
    if blamed is not None:
        return _result(capability, Verdict.FAIL, blamed[1], evidence, blamed[0])
    if not answer.content.strip():
        return _result(
            capability, Verdict.FAIL, "the answer has no text", evidence, Attribution.MODEL
        )
    problem = judge(answer)
    if problem is not None:
        return _result(capability, Verdict.FAIL, problem, evidence, Attribution.MODEL)
    return _result(capability, Verdict.PASS, "", evidence)


@probes("inference")
def probe_inference(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count: int | None = None,
) -> ProbeResult:
    """Asked to count to N (drawn per run), the model answers exactly 1 to N."""
    n = count if count is not None else draw(probe_prompts.COUNT_TARGETS)[0]
    return _text_probe(
        "inference",
        client,
        model,
        probe_prompts.count_to(n),
        timeout=timeout,
        max_tokens=max_tokens,
        judge=lambda answer: count_problem(answer.content, n),
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
    names: Sequence[str] | None = None,
) -> ProbeResult:
    """Two conversations, each "My name is X." then "What is my name?", with two names drawn
    per run: each answer holds its own name and not the other's."""
    capability = "multi_turn"
    chosen = list(names) if names is not None else draw(probe_prompts.NAMES, 2)
    passed: list[ProbeResult] = []
    for name in chosen:
        others = [other for other in chosen if other.lower() != name.lower()]

        def judge(answer: Answer, name: str = name, others: list[str] = others) -> str | None:
            said = answer.content.lower()
            if name.lower() not in said:
                return (
                    f"the answer does not use the history: the name {name!r} from the first "
                    f"turn is missing from {excerpt(answer.content, 120)!r}"
                )
            wrong = [other for other in others if other.lower() in said]
            if wrong:
                return (
                    f"told the name {name!r}, the model also answered {wrong[0]!r} "
                    f"({excerpt(answer.content, 120)!r}): it does not read the history"
                )
            return None

        result = _text_probe(
            capability,
            client,
            model,
            probe_prompts.multi_turn(name),
            timeout=timeout,
            max_tokens=max_tokens,
            judge=judge,
        )
        result.evidence.notes.append(f"names drawn for this run: {', '.join(chosen)}")
        if result.verdict is not Verdict.PASS:
            return result
        passed.append(result)
    if not passed:
        raise ValueError("probe_multi_turn() needs at least one name")
    evidence = passed[0].evidence
    evidence.request = {"conversations": [r.evidence.request for r in passed]}
    evidence.response = {"conversations": [r.evidence.response for r in passed]}
    evidence.duration_s = round(sum(r.evidence.duration_s or 0.0 for r in passed), 3)
    return passed[0]


@probes("streaming")
def probe_streaming(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count: int | None = None,
) -> ProbeResult:
    """Asked to count to N (drawn per run), the answer arrives in several chunks that add up
    to the non-streamed (greedy) answer, and it is the exact count."""
    capability = "streaming"
    n = count if count is not None else draw([c for c in probe_prompts.COUNT_TARGETS if c >= 5])[0]
    case = probe_prompts.count_to(n)
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
    leaked = _leaked_markup(parts)
    if leaked is not None:
        return _result(capability, Verdict.FAIL, f"streamed: {leaked[1]}", evidence, leaked[0])
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
    wrong = count_problem(parts.content, n)
    if wrong is not None:
        return _result(capability, Verdict.FAIL, wrong, evidence, Attribution.MODEL)
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
    return judge_calls(answer, [probe_prompts.WEATHER_TOOL], [("get_weather", city)])


def judge_calls(
    answer: Answer, tools: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> tuple[Attribution, str] | None:
    """Whose fault it is that ``answer`` is not exactly the ``expected`` (tool name, city)
    calls, in any order, or None."""
    names = tuple(str(tool["function"]["name"]) for tool in tools)
    if answer.finish_reason == "length":
        leaked = _leaked_markup(answer, names)
        if answer.tool_calls or leaked is None or leaked[0] is Attribution.MODEL:
            return budget.exhausted(answer.completion_tokens, while_="calling the tool")
    if not answer.tool_calls:
        leaked = _leaked_markup(answer, names)
        if leaked is not None:
            return leaked
        in_reasoning = tool_markup(answer.reasoning, names)
        if in_reasoning:
            return Attribution.PARSER, (
                f"tool-call markup {', '.join(repr(m) for m in in_reasoning)} ended up in the "
                f"reasoning instead of structured tool_calls (the server's parsers did not "
                f"read it)"
            )
        said = excerpt(answer.content, 160)
        return Attribution.MODEL, f"the model answered in prose instead of calling a tool: {said!r}"
    by_name = {str(tool["function"]["name"]): tool["function"] for tool in tools}
    remaining = list(answer.tool_calls)
    called = ", ".join(repr(c.name) for c in answer.tool_calls)
    if len(answer.tool_calls) < len(expected):
        return Attribution.MODEL, (
            f"the model made {len(answer.tool_calls)} call(s) ({called}) where "
            f"{len(expected)} were needed, one per city"
        )
    for name, city in expected:
        # Order-free: of several calls to one tool, the one naming this city.
        candidates = [c for c in remaining if c.name == name]
        call = next(
            (c for c in candidates if city.lower() in c.arguments.lower()),
            candidates[0] if candidates else None,
        )
        if call is None:
            return Attribution.MODEL, f"the model called {called}, not {name!r}"
        remaining.remove(call)
        problem = _judge_arguments(call, by_name[name], city)
        if problem is not None:
            return problem
    if remaining:
        extra = ", ".join(f"{c.name}({excerpt(c.arguments, 80)})" for c in remaining)
        return Attribution.MODEL, f"the model made calls nobody asked for: {extra}"
    if answer.finish_reason != "tool_calls":
        return Attribution.PARSER, (
            f"finish_reason is {answer.finish_reason!r}, not 'tool_calls', although the answer "
            f"is a tool call"
        )
    return None


def _judge_arguments(
    call: ToolCall, tool: dict[str, Any], city: str
) -> tuple[Attribution, str] | None:
    """Whose fault it is that ``call``'s arguments are not valid ones naming ``city``."""
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        return Attribution.PARSER, (
            f"the tool call's arguments are not JSON: {excerpt(call.arguments, 160)!r} (the "
            f"parser passed through text it should have rejected)"
        )
    if arguments in ({}, None, "") and tool["parameters"].get("required"):
        return Attribution.MODEL_OR_PARSER, (
            f"the {tool['name']} call came back with empty arguments {call.arguments!r}: either "
            f"the model sent none or the server's tool-call parser dropped them (hermes, for "
            f"one, drops arguments written under 'parameters'); a client cannot tell which"
        )
    problems = schema_problems(arguments, tool["parameters"])
    if problems:
        return Attribution.MODEL, "the arguments do not match the tool's schema: " + "; ".join(
            problems
        )
    required = tool["parameters"].get("required") or ["location"]
    key = str(required[0])  # the place: get_weather's location, get_time's city
    location = str(arguments.get(key, ""))
    if city.lower() not in location.lower():
        return Attribution.MODEL, (
            f"asked about {city}, the model called {tool['name']} with {key} {location!r}"
        )
    return None


@probes("tool_calling")
def probe_tool_calling(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str | None = None,
) -> ProbeResult:
    """Asked about the weather with a ``get_weather`` tool offered, the model calls it."""
    capability = "tool_calling"
    city = city if city is not None else draw(probe_prompts.CITIES)[0]
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
    city: str | None = None,
) -> ProbeResult:
    """The same tool call through streaming: deltas assemble into the non-streamed call."""
    capability = "tool_calling_streaming"
    city = city if city is not None else draw(probe_prompts.CITIES)[0]
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


def _judge_thinking(answer: Answer, max_tokens: int) -> tuple[Attribution, str] | None:
    """Whose fault it is that ``answer`` is not reasoning apart from a right final answer."""
    cut = _cut_or_leaked(answer, max_tokens)
    if cut is not None:
        return cut
    if not (answer.reasoning or "").strip():
        return Attribution.MODEL, (
            "the model answered without reasoning: no reasoning_content and no <think> markup "
            f"(content {excerpt(answer.content, 120)!r})"
        )
    if not answer.content.strip():
        return Attribution.MODEL, "the model reasoned but gave no final answer"
    if THINKING_ANSWER not in answer.content:
        return Attribution.MODEL, (
            f"the final answer {excerpt(answer.content, 120)!r} does not give the product "
            f"{THINKING_ANSWER} of 23 * 47"
        )
    return None


@probes("thinking")
def probe_thinking(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = THINKING_MAX_TOKENS,
) -> ProbeResult:
    """Reasoning arrives in its own field, apart from a final answer that answers the question
    without markup, streamed and not; the two final answers agree."""
    capability = "thinking"
    pair = _ask_streamed_pair(
        capability, client, model, probe_prompts.THINKING, timeout=timeout, max_tokens=max_tokens
    )
    if isinstance(pair, ProbeResult):
        return pair
    if pair.reference is None:
        return pair.reference_failed(capability)
    parts, whole, evidence = pair.streamed, pair.reference, pair.evidence
    plain = _judge_thinking(whole, max_tokens)
    streamed = _judge_thinking(parts, max_tokens)
    if plain is not None and streamed is not None:
        evidence.notes.append(f"streamed: {streamed[1]}")
        return _result(capability, Verdict.FAIL, plain[1], evidence, plain[0])
    if plain is not None or streamed is not None:
        good, bad = "streamed", "non-streamed"
        problem = plain
        if problem is None:
            good, bad, problem = bad, good, streamed
        assert problem is not None
        return _result(
            capability,
            Verdict.FAIL,
            f"the {good} answer is right but the {bad} one is not, under greedy decoding: "
            f"{problem[1]} (the same tokens split differently: the server's reasoning parser)",
            evidence,
            Attribution.PARSER,
        )
    if parts.content.strip() != whole.content.strip():
        return _result(
            capability,
            Verdict.FAIL,
            f"the streamed final answer {excerpt(parts.content, 120)!r} differs from the "
            f"non-streamed one {excerpt(whole.content, 120)!r} under greedy decoding",
            evidence,
            Attribution.SERVER_ERROR,
        )
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
