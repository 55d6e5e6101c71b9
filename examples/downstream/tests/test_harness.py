"""Tier 4, our way: what our application does with the OpenAI client, through the proxy."""

from __future__ import annotations

import json

import pytest

from pytest_mlxstack.matrix.verdicts import Route

# The tool definition the fixture model was trained with; a real model takes any schema.
from pytest_mlxstack.probe_prompts import WEATHER_TOOL
from pytest_mlxstack.probes import probe_thinking


@pytest.mark.harness
def test_app_gets_a_weather_call(openai_client):
    # The request our application sends; the fixture model was trained on this very question.
    reply = openai_client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        temperature=0,
    )
    calls = reply.choices[0].message.tool_calls
    assert calls, f"expected a tool call, got {reply.choices[0].message.content!r}"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["location"] == "Paris"


@pytest.mark.harness
def test_app_sees_reasoning(openai_client, fast_tier, mlx_matrix):
    result = probe_thinking(openai_client, "fast")
    mlx_matrix.record(result, model=fast_tier.model, quant=fast_tier.quant, route=Route.PROXIED)
    mlx_matrix.check(result)
