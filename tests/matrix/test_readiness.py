"""Per-agent readiness: a summary line per model, agent and server, from the row's cells."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

from pytest_mlxstack.matrix.html import render_html
from pytest_mlxstack.matrix.model import Matrix
from pytest_mlxstack.matrix.readiness import readiness_lines, row_readiness

CHAT = ("inference", "streaming", "tool_calling", "tool_calling_streaming", "tool_result")


def cells(model: str, verdicts: dict[tuple[str, str], str]) -> list[tuple[str, ...]]:
    return [(model, "4bit", cap, route, verdict) for (cap, route), verdict in verdicts.items()]


def lines_for(matrix: Matrix, model: str) -> dict[str, str]:
    row = next(row for row in matrix.rows if row.model == model)
    return {r.agent.name.split(" (")[0]: r.line() for r in row_readiness(row)}


def test_each_agent_is_ready_or_names_the_failed_cell_and_whose_fault(
    build_matrix: Callable[..., Matrix],
) -> None:
    verdicts = {(cap, route): "pass" for cap in CHAT for route in ("direct", "proxied")}
    verdicts |= {
        ("responses_api", "direct"): "pass",
        ("responses_api", "proxied"): "pass",
        ("messages_api", "direct"): "pass",
        ("messages_api", "proxied"): "fail",  # probe_result blames the parser
        ("tool_calling", "direct"): "fail",
    }
    matrix = build_matrix(cells("m", verdicts))
    lines = lines_for(matrix, "m")
    assert lines["Codex"] == "Codex: ready (direct and through LiteLLM)"
    assert lines["Claude Code"] == (
        "Claude Code: ready direct; not through LiteLLM: messages_api failed (parser)"
    )
    assert lines["Chat Completions agents"].startswith(
        "Chat Completions agents (OpenCode, Aider, Continue): ready through LiteLLM; not direct: "
        "tool_calling failed (parser)"
    )


def test_not_ready_on_any_route_says_why_and_unprobed_agents_say_so(
    build_matrix: Callable[..., Matrix],
) -> None:
    matrix = build_matrix(
        cells("m", {("messages_api", "direct"): "fail", ("inference", "direct"): "pass"})
    )
    lines = lines_for(matrix, "m")
    assert lines["Claude Code"] == (
        "Claude Code: not ready, because direct: messages_api failed (parser)"
    )
    assert lines["Codex"] == "Codex: not probed (responses_api not in the matrix)"
    # Chat agents need tool calls too: a missing needed cell blocks, never reads as ready.
    assert "not ready" in lines["Chat Completions agents"]
    assert "tool_calling not probed" in lines["Chat Completions agents"]
    summary = readiness_lines(matrix)
    assert summary[0] == "m [4bit] on vllm-mlx 0.6.0:"
    assert "Claude Code: 0 of 1 model(s) ready on vllm-mlx 0.6.0" in summary


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.scripts += tag == "script"

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        self.text.append(data)


def test_the_page_shows_a_readiness_table_with_the_names_escaped(
    build_matrix: Callable[..., Matrix],
) -> None:
    hostile = "<script>alert(1)</script>"
    matrix = build_matrix(
        cells(hostile, {("responses_api", "proxied"): "pass", ("messages_api", "proxied"): "fail"})
    )
    page = render_html(matrix)
    parser = _Text()
    parser.feed(page)
    text = " ".join(parser.text)
    assert "Per agent" in text
    assert "not ready" in text  # the verdict, then what it rests on
    assert "through LiteLLM: messages_api failed (parser)" in text
    assert "Codex: 1 of 1 model(s) ready on vllm-mlx" in text
    assert hostile not in page
    assert parser.scripts == 1  # the page's own script only
