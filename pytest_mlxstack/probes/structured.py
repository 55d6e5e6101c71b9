"""Structured output: ``response_format`` json_object and json_schema, the way agents ask for
machine-readable answers.

The question (a city drawn per run, the number of letters in its name) asks for JSON in words
too, as OpenAI requires for json_object. What the server promises decides the blame: with
``response_format`` accepted, an answer that is not JSON (json_object) or does not fit the
schema (json_schema) is the server's (it must constrain decoding); a request it refuses is
the server's (``exchange.classify``: HTTP 500 and the body as evidence); JSON with wrong
values is the model's.
"""

from __future__ import annotations

import json
from typing import Any

from openai import DefaultHttpxClient, OpenAI

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult
from pytest_mlxstack.probes import budget
from pytest_mlxstack.probes.answer import Answer
from pytest_mlxstack.probes.binding import probes
from pytest_mlxstack.probes.capabilities import (
    DEFAULT_MAX_TOKENS,
    _ask,
    _leaked_markup,
    draw,
    refused_parameter,
)
from pytest_mlxstack.probes.exchange import DEFAULT_TIMEOUT_S, excerpt
from pytest_mlxstack.probes.parameters import _combined, _worst
from pytest_mlxstack.probes.schema_check import schema_problems


def _judge_json(
    how: str, answer: Answer, city: str, max_tokens: int
) -> tuple[Attribution, str] | None:
    """Whose fault it is that ``answer`` is not the JSON object for ``city``, or None."""
    leaked = _leaked_markup(answer)
    if leaked is not None:
        return leaked[0], f"{how}: {leaked[1]}"
    if answer.finish_reason == "length":
        attribution, reason = budget.exhausted(max_tokens)
        return attribution, f"{how}: {reason}"
    text = answer.content.strip()
    try:
        value: Any = json.loads(text)
    except ValueError:
        return Attribution.SERVER_ERROR, (
            f"{how}: the server accepted response_format but the answer is not JSON "
            f"({excerpt(answer.content, 120)!r}): it did not constrain the output"
        )
    # json_object promises JSON only: keys beyond the two asked for are no fault there.
    schema = dict(probe_prompts.CITY_SCHEMA)
    if how == "json_object":
        schema.pop("additionalProperties", None)
    problems = schema_problems(value, schema, "the answer")
    if problems and how == "json_schema":
        return Attribution.SERVER_ERROR, (
            f"{how}: the server accepted the schema but the answer breaks it ("
            + "; ".join(problems)
            + ")"
        )
    if problems:
        return Attribution.MODEL, (
            f"{how}: the JSON does not have the keys asked for (" + "; ".join(problems) + ")"
        )
    if str(value["city"]).lower() != city.lower() or value["letters"] != len(city):
        return Attribution.MODEL, (
            f"{how}: asked for {city} and its {len(city)} letters, the model answered "
            f"{excerpt(text, 120)!r}"
        )
    return None


@probes("structured_output")
def probe_structured_output(
    client: OpenAI,
    model: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    city: str | None = None,
) -> ProbeResult:
    """The city question with response_format json_object, then json_schema: each answer
    parses as JSON, fits the schema and holds the city and its number of letters."""
    capability = "structured_output"
    city = city if city is not None else draw(probe_prompts.STRUCTURED_CITIES)[0]
    # A connection pool of its own: vllm-mlx 0.6.0 drops the connection of a request its
    # json_schema backend failed, and a reused one would fail the next cell as server_down.
    own = client.copy(http_client=DefaultHttpxClient())
    try:
        parts = {
            way: _ask(
                own,
                model,
                probe_prompts.structured(city, way),
                timeout=timeout,
                max_tokens=max_tokens,
                extra=probe_prompts.structured(city, way).extra,
            )
            for way in probe_prompts.RESPONSE_FORMATS
        }
    finally:
        own.close()
    evidence = _combined(parts)
    problems: list[tuple[Attribution, str]] = []
    for way, (exchange, answer) in parts.items():
        if answer is None:
            failure = exchange.failure
            assert failure is not None
            refused = refused_parameter(exchange, f"response_format {way}")
            problems.append(refused or (failure.attribution, f"{way}: {failure.reason}"))
            continue
        problem = _judge_json(way, answer, city, max_tokens)
        if problem is not None:
            problems.append(problem)
    return _worst(capability, problems, evidence)
