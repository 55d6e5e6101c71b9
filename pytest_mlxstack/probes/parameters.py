"""Request parameters agents rely on: ``stop``, ``max_tokens`` (finish ``length``) and token
``usage``, streamed and not.

These are the server's job, not the model's: a stop sequence that is not honoured, a wrong
``finish_reason`` or missing counts are attributed to the server, with what came back as
evidence. The prompt is the count the model already answers (``Count to 10.``), so that the
expected text is known exactly.
"""

from __future__ import annotations

from typing import Any

from openai import OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict
from pytest_mlxstack.probes.answer import Answer, from_chunks, from_completion
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.capabilities import (
    DEFAULT_MAX_TOKENS,
    _evidence,
    _result,
    draw,
)
from pytest_mlxstack.probes.exchange import DEFAULT_TIMEOUT_S, Exchange, chat, excerpt

COUNT = 10
LENGTH_MAX_TOKENS = 3


def _send(
    client: OpenAI, model: str, *, timeout: float, stream: bool, **params: Any
) -> tuple[Exchange, Answer | None]:
    case = probe_prompts.count_to(COUNT)
    exchange = chat(client, model, case.messages, timeout=timeout, stream=stream, **params)
    if exchange.failure is not None:
        return exchange, None
    if stream:
        return exchange, from_chunks(exchange.chunks)
    assert exchange.completion is not None
    return exchange, from_completion(exchange.completion)


def _combined(parts: dict[str, tuple[Exchange, Answer | None]]) -> Evidence:
    """One evidence for several requests, each under its own key."""
    evidences = {key: _evidence(exchange, answer, []) for key, (exchange, answer) in parts.items()}
    first = next(iter(evidences.values()))
    return Evidence(
        request={key: e.request for key, e in evidences.items()},
        response={key: e.response for key, e in evidences.items()},
        duration_s=round(sum(e.duration_s or 0.0 for e in evidences.values()), 3),
        prompt_tokens=first.prompt_tokens,
        completion_tokens=first.completion_tokens,
    )


def _worst(
    capability: str, problems: list[tuple[Attribution, str]], evidence: Evidence
) -> ProbeResult:
    """PASS without problems; otherwise FAIL listing all, blamed on the first one's culprit."""
    if not problems:
        return _result(capability, Verdict.PASS, "", evidence)
    reason = "; ".join(text for _, text in problems)
    return _result(capability, Verdict.FAIL, reason, evidence, problems[0][0])


@probes("stop")
def probe_stop(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    at: int | None = None,
) -> ProbeResult:
    """ "Count to 10." with the stop sequence ", K" (K drawn per run) ends just before it, the
    stop text absent and finish_reason ``stop``: as a list, non-streamed and streamed, and as
    a plain string (which the API allows)."""
    capability = "stop"
    k = at if at is not None else draw(range(4, 9))[0]
    stop = f", {k}"
    expected = ", ".join(str(i) for i in range(1, k))
    ways = {
        "list": ([stop], False),
        "list_streamed": ([stop], True),
        "string": (stop, False),
    }
    parts = {
        key: _send(client, model, timeout=timeout, stream=stream, stop=value, max_tokens=max_tokens)
        for key, (value, stream) in ways.items()
    }
    evidence = _combined(parts)
    problems: list[tuple[Attribution, str]] = []
    for key, (exchange, answer) in parts.items():
        how = {
            "list": "without streaming",
            "list_streamed": "streamed",
            "string": "given as a plain string",
        }[key]
        if answer is None:
            failure = exchange.failure
            assert failure is not None
            if key == "string" and failure.status is not None and 400 <= failure.status < 500:
                problems.append(
                    (
                        Attribution.SERVER_ERROR,
                        f"the server refused stop {how} with HTTP {failure.status}, although "
                        f"the API allows a string",
                    )
                )
            else:
                problems.append((failure.attribution, f"stop {how}: {failure.reason}"))
            continue
        text = answer.content.strip()
        if text == expected:
            if answer.finish_reason != "stop":
                problems.append(
                    (
                        Attribution.SERVER_ERROR,
                        f"stop {how}: the answer stopped right but finish_reason is "
                        f"{answer.finish_reason!r}, not 'stop'",
                    )
                )
            continue
        if text.startswith(expected + stop):
            left = (
                "the stop text was left in the answer"
                if text == expected + stop
                else ("the stop sequence was ignored: the answer went on past it")
            )
            problems.append(
                (
                    Attribution.SERVER_ERROR,
                    f"stop {stop!r} {how}: {left} ({excerpt(answer.content, 80)!r})",
                )
            )
            continue
        # A piece of the right count stopped elsewhere is the server's; another text the model's.
        whole = probe_prompts.count_to(COUNT).expected_content or ""
        problems.append(
            (
                Attribution.SERVER_ERROR if whole.startswith(text) else Attribution.MODEL,
                f"stop {how}: expected {expected!r}, got {excerpt(answer.content, 80)!r}",
            )
        )
    return _worst(capability, problems, evidence)


@probes("length")
def probe_length(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = LENGTH_MAX_TOKENS,
) -> ProbeResult:
    """ "Count to 10." with a ``max_tokens`` too small for the answer ends at once, streamed
    and not, with finish_reason ``length`` and at most ``max_tokens`` completion tokens."""
    capability = "length"
    parts = {
        key: _send(client, model, timeout=timeout, stream=stream, max_tokens=max_tokens)
        for key, stream in (("non_streamed", False), ("streamed", True))
    }
    evidence = _combined(parts)
    problems: list[tuple[Attribution, str]] = []
    for key, (exchange, answer) in parts.items():
        how = key.replace("_", "-")
        if answer is None:
            failure = exchange.failure
            assert failure is not None
            problems.append((failure.attribution, f"{how}: {failure.reason}"))
            continue
        if answer.finish_reason != "length":
            problems.append(
                (
                    Attribution.SERVER_ERROR,
                    f"{how}: with max_tokens={max_tokens} the answer ended with finish_reason "
                    f"{answer.finish_reason!r}, not 'length' ({excerpt(answer.content, 80)!r})",
                )
            )
        if answer.completion_tokens is not None and answer.completion_tokens > max_tokens:
            problems.append(
                (
                    Attribution.SERVER_ERROR,
                    f"{how}: {answer.completion_tokens} completion tokens for max_tokens="
                    f"{max_tokens}",
                )
            )
    return _worst(capability, problems, evidence)


def _usage_problems(how: str, answer: Answer) -> list[str]:
    counts = (answer.prompt_tokens, answer.completion_tokens, answer.total_tokens)
    if None in counts:
        return [
            f"{how}: usage is missing or incomplete (prompt {counts[0]}, completion "
            f"{counts[1]}, total {counts[2]})"
        ]
    prompt, completion, total = (int(c or 0) for c in counts)
    problems = []
    if prompt <= 0 or completion <= 0:
        problems.append(f"{how}: usage counts {prompt} prompt and {completion} completion tokens")
    if total != prompt + completion:
        problems.append(f"{how}: total_tokens {total} is not {prompt} + {completion}")
    return problems


@probes("usage")
def probe_usage(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ProbeResult:
    """Token counts come back, consistent (total = prompt + completion), non-streamed and
    streamed with ``stream_options.include_usage``, and the same both ways (greedy)."""
    capability = "usage"
    parts = {
        key: _send(client, model, timeout=timeout, stream=stream, max_tokens=max_tokens)
        for key, stream in (("non_streamed", False), ("streamed", True))
    }
    evidence = _combined(parts)
    problems: list[tuple[Attribution, str]] = []
    answers: dict[str, Answer] = {}
    for key, (exchange, answer) in parts.items():
        how = key.replace("_", "-")
        if answer is None:
            failure = exchange.failure
            assert failure is not None
            problems.append((failure.attribution, f"{how}: {failure.reason}"))
            continue
        answers[key] = answer
        evidence.response[key]["usage"] = {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.total_tokens,
        }
        problems += [(Attribution.SERVER_ERROR, text) for text in _usage_problems(how, answer)]
    if not problems and len(answers) == 2:
        whole, parts_ = answers["non_streamed"], answers["streamed"]
        same_text = whole.content == parts_.content
        if same_text and (whole.prompt_tokens, whole.completion_tokens) != (
            parts_.prompt_tokens,
            parts_.completion_tokens,
        ):
            problems.append(
                (
                    Attribution.SERVER_ERROR,
                    f"the same answer is counted {whole.prompt_tokens}+{whole.completion_tokens} "
                    f"tokens non-streamed and {parts_.prompt_tokens}+{parts_.completion_tokens} "
                    f"streamed",
                )
            )
    return _worst(capability, problems, evidence)
