"""The speed measurement never fails a test: a server that cannot answer measures nothing."""

from __future__ import annotations

import socket

import pytest

from pytest_mlxstack.probes.performance import Performance, measure_performance
from pytest_mlxstack.wiring.skips import skip_no_openai

pytestmark = [skip_no_openai]


def test_a_server_that_does_not_answer_measures_nothing() -> None:
    openai = pytest.importorskip("openai")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    with client:
        measured = measure_performance(client, "tiny-chat")
    assert measured == Performance()
    assert measured.as_row_facts() == {
        "ttft_s": None,
        "decode_tokens_per_s": None,
        "prompt_tokens_per_s": None,
    }
