"""Aggregation of recorded cells, independent of pytest; secrets never reach a cell."""

from __future__ import annotations

import json

import pytest

from pytest_mlxstack.matrix.collect import (
    MatrixCollector,
    PayloadError,
    cell_payload,
    row_payload,
)
from pytest_mlxstack.matrix.verdicts import Evidence, ProbeResult, Verdict
from pytest_mlxstack.text.redact import redact_text, sanitize

KEY = "sk-proj-4f9aZ81kQ0xVb7"


def result(verdict, **evidence):
    return ProbeResult("tool_calling", Verdict(verdict), reason="r", evidence=Evidence(**evidence))


def test_a_cell_recorded_twice_keeps_the_failure_in_any_order(make_run):
    payloads = [
        cell_payload(result("pass"), model="m", quant="q", route="direct", test_id="t1"),
        cell_payload(result("fail"), model="m", quant="q", route="direct", test_id="t2"),
        cell_payload(result("skip"), model="m", quant="q", route="direct", test_id="t3"),
    ]
    built = []
    for order in (payloads, payloads[::-1]):
        collector = MatrixCollector()
        for payload in order:
            collector.add_cell(payload)
        built.append(collector.build(make_run("r", "2025-01-01T00:00:00Z")))
        assert "recorded 3 times with verdicts fail, pass, skip" in collector.warnings[0]
    assert built[0] == built[1]
    (cell,) = built[0].rows[0].cells
    assert (cell.verdict.value, cell.test_id) == ("fail", "t2")


def test_server_starts_are_the_run_count_not_a_sum_over_workers(make_run):
    """Every worker reads the same count from the shared pool ledger: two workers reporting
    1 saw one start, and a later report of 2 (the server died and came back) wins."""
    collector = MatrixCollector()
    for process, starts in (("gw0", 1), ("gw1", 1), ("gw0", 1)):
        collector.add_row(row_payload(model="m", quant="q", server_starts=starts, process=process))
    collector.add_row(row_payload(model="m", quant="q", startup_s=3.5, memory_mb=900.0))
    collector.add_row(row_payload(model="m", quant="q", startup_s=4.5, process="gw1"))
    collector.add_row(row_payload(model="n", quant="q", server_starts=1, process="gw0"))
    collector.add_row(row_payload(model="n", quant="q", server_starts=2, process="gw1"))
    collector.add_row(row_payload(model="n", quant="q", server_starts=1, process="gw0"))
    m, n = collector.build(make_run("r", "2025-01-01T00:00:00Z")).rows
    assert (m.server_starts, m.startup_s, m.memory_mb) == (1, 4.5, 900.0)
    assert n.server_starts == 2


def test_performance_keeps_the_best_any_worker_measured_in_any_order(make_run):
    """Each xdist worker measures its own streamed request; the row keeps the shortest time to
    first token and the highest rates, whatever order the reports arrive in."""
    payloads = [
        row_payload(model="m", quant="q", ttft_s=0.2, decode_tokens_per_s=900.0, process="gw0"),
        row_payload(model="m", quant="q", ttft_s=0.05, prompt_tokens_per_s=400.0, process="gw1"),
        row_payload(model="m", quant="q", decode_tokens_per_s=1200.0, prompt_tokens_per_s=350.0),
    ]
    rows = []
    for order in (payloads, payloads[::-1]):
        collector = MatrixCollector()
        for payload in order:
            collector.add_row(payload)
        (row,) = collector.build(make_run("r", "2025-01-01T00:00:00Z")).rows
        rows.append((row.ttft_s, row.decode_tokens_per_s, row.prompt_tokens_per_s))
    assert rows == [(0.05, 1200.0, 400.0)] * 2


def test_secrets_are_redacted_before_a_cell_leaves_the_process():
    payload = cell_payload(
        result(
            "fail",
            request={
                "headers": {"Authorization": f"Bearer {KEY}", "X-Api-Key": "plain-secret"},
                "url": f"http://127.0.0.1:4000/v1?api_key={KEY}",
            },
            response={"content": f"the key is {KEY}; token hf_abcdefghijklmnopqrstu"},
            notes=[f"curl -H 'Authorization: Bearer {KEY}'"],
        ),
        model="m",
        quant="q",
        route="proxied",
    )
    text = json.dumps(payload)
    assert KEY not in text
    assert "plain-secret" not in text
    assert "hf_abcdefghijklmnopqrstu" not in text
    assert payload["result"]["evidence"]["response"]["content"].startswith("the key is sk-[REDA")


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("master_key: s3cretvalue", "master_key: [REDACTED]"),
        ("LITELLM_MASTER_KEY=plainsecret123", "LITELLM_MASTER_KEY=[REDACTED]"),
        ("env: HF_TOKEN=abcdef ok", "env: HF_TOKEN=[REDACTED] ok"),
        ('{"api_key": "abc123", "n": 1}', '{"api_key": "[REDACTED]", "n": 1}'),
        ("password=hunter22 user=me", "password=[REDACTED] user=me"),
        ("client_secret: xyz789", "client_secret: [REDACTED]"),
        ("http://h/?token=abcdef", "http://h/?token=[REDACTED]"),
        ("http://h/v1?a=1&key=abcdef&b=2", "http://h/v1?a=1&key=[REDACTED]&b=2"),
        (
            "http://h/?x_secret=s3c&password=p4ss",
            "http://h/?x_secret=[REDACTED]&password=[REDACTED]",
        ),
    ],
)
def test_secret_names_and_query_parameters_are_redacted(text, redacted):
    assert redact_text(text) == redacted


def test_known_secret_values_are_redacted_whatever_their_shape():
    master = "plain-master-value-91"  # no sk- prefix, no name before it
    payload = cell_payload(
        result("fail", notes=[f"litellm said: bad key {master}"], response={master: master}),
        model="m",
        quant="q",
        route="proxied",
        secrets=[master, ""],  # an empty secret must not redact everything
    )
    text = json.dumps(payload)
    assert master not in text
    assert payload["result"]["evidence"]["notes"] == ["litellm said: bad key [REDACTED]"]
    assert payload["model"] == "m"


def test_redaction_keeps_ordinary_text():
    assert redact_text("tokens: 12, the answer is 42") == "tokens: 12, the answer is 42"
    for text in (
        '{"max_tokens": 512, "prompt_tokens": 9, "completion_tokens": 3}',
        "http://127.0.0.1:8000/v1/chat/completions?stream=true&max_tokens=64",
        "The monkey=banana; a token of thanks",
        "finish_reason: tool_calls",
    ):
        assert redact_text(text) == text
    assert sanitize({"n": float("inf"), "t": (1, 2)}) == {"n": None, "t": [1, 2]}
    assert sanitize({"max_tokens": 5, "HF_TOKEN": "abc"}) == {
        "max_tokens": 5,
        "HF_TOKEN": "[REDACTED]",
    }


def test_a_malformed_payload_is_reported_not_swallowed():
    with pytest.raises(PayloadError, match="malformed"):
        MatrixCollector().add_cell({"model": "m"})
