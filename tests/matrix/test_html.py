"""The HTML page: self-contained, coloured by verdict, evidence on demand, model output inert."""

from __future__ import annotations

import base64
import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path

from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload
from pytest_mlxstack.matrix.expectations import parse_expectations
from pytest_mlxstack.matrix.html import render_html
from pytest_mlxstack.matrix.summary import model_summaries, server_summaries
from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Verdict

HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
TEMPLATES = Path(__file__).resolve().parents[2] / "pytest_mlxstack" / "matrix" / "templates"


def pinned(name: str) -> str:
    """The CSP source expression of one of the page's own files."""
    digest = hashlib.sha256((TEMPLATES / name).read_bytes()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


class PageParser(HTMLParser):
    """Collects elements, attributes and the text inside each kind of element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text_in: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("br", "meta", "img", "link", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        for tag in set(self.stack):
            self.text_in.setdefault(tag, []).append(data)

    def text(self, tag: str) -> str:
        return "".join(self.text_in.get(tag, []))

    def cells(self) -> list[dict[str, str | None]]:
        return [
            attrs
            for tag, attrs in self.tags
            if tag == "td" and "cell" in (attrs.get("class") or "")
        ]


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def hostile_matrix(make_run):
    collector = MatrixCollector(
        parse_expectations(
            [
                {
                    "model": "tiny-chat",
                    "capability": "thinking",
                    "verdict": "fail",
                    "reason": "known <b>bad</b>",
                    "link": "https://github.com/org/repo/issues/7",
                }
            ]
        )
    )
    hostile = ProbeResult(
        capability="tool_calling",
        verdict=Verdict.FAIL,
        reason=f"tool call markup left in content: {HOSTILE}",
        attribution=Attribution.PARSER,
        evidence=Evidence(
            request={"messages": [{"role": "user", "content": "What is the weather?"}]},
            response={"content": HOSTILE},
        ),
    )
    collector.add_cell(cell_payload(hostile, model="tiny-chat", quant="bf16", route="direct"))
    passing = ProbeResult(capability="thinking", verdict=Verdict.PASS, reason="reasoning present")
    collector.add_cell(cell_payload(passing, model="tiny-chat", quant="bf16", route="direct"))
    return collector.build(make_run("20250101T000000Z-aaaaaa", "2025-01-01T00:00:00Z"))


def with_link(matrix, link):
    """The same matrix as a hand-edited file could carry it: another expectation link."""
    for _, cell in matrix.iter_cells():
        if cell.expectation is not None:
            cell.expectation.link = link
    return matrix


def test_script_in_a_model_response_is_shown_as_text_never_run(make_run):
    page = parse(render_html(hostile_matrix(make_run)))

    assert not [tag for tag, _ in page.tags if tag in ("img", "iframe", "object")]
    # The one script is the page's own (evidence panels), pinned by its hash in the CSP.
    assert [tag for tag, _ in page.tags].count("script") == 1
    assert page.text("script") == (TEMPLATES / "matrix.js").read_text()
    assert not [attrs for _, attrs in page.tags if any(name.startswith("on") for name in attrs)]
    assert json.dumps(HOSTILE) in page.text("pre")  # the evidence JSON, as text
    assert HOSTILE in page.text("details")  # the reason too


def test_page_is_self_contained(make_run):
    page = parse(render_html(hostile_matrix(make_run)))
    fetched = [
        (tag, attrs)
        for tag, attrs in page.tags
        if tag in ("link", "img", "iframe") or "src" in attrs or ("href" in attrs and tag != "a")
    ]
    assert fetched == []
    (policy,) = [
        attrs["content"]
        for tag, attrs in page.tags
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert policy.startswith("default-src 'none'; ")
    assert f"style-src {pinned('matrix.css')};" in policy
    assert f"script-src {pinned('matrix.js')};" in policy
    assert "unsafe-inline" not in policy
    assert not [attrs for _, attrs in page.tags if "style" in attrs]  # would be refused
    assert "@import" not in page.text("style")
    assert "url(" not in page.text("style")
    links = [attrs["href"] for tag, attrs in page.tags if "href" in attrs]
    assert links == ["https://github.com/org/repo/issues/7"]  # the known failure's issue
    assert "known <b>bad</b>" in page.text("details")


def test_a_javascript_link_in_a_matrix_file_is_not_clickable(make_run):
    page = parse(render_html(with_link(hostile_matrix(make_run), "javascript:alert(1)")))
    assert [attrs for _, attrs in page.tags if "href" in attrs] == []


def test_cells_are_coloured_by_verdict_with_evidence_on_demand(build_matrix):
    matrix = build_matrix(
        [
            ("tiny-chat", "bf16", "inference", "direct", "pass"),
            ("tiny-chat", "bf16", "tool_calling", "direct", "fail"),
            ("tiny-chat", "bf16", "streaming", "direct", "skip"),
            ("tiny-chat-no-think", "bf16", "inference", "direct", "n/a"),
        ]
    )
    page = parse(render_html(matrix))

    classes = [attrs["class"] for attrs in page.cells()]
    # Rows are capabilities (inference, streaming, tool_calling), columns models in rank
    # order (tiny-chat passed 1 of 2, tiny-chat-no-think 0 of 0); a gap is marked empty.
    assert classes == [
        "cell pass",
        "cell na",
        "cell skip",
        "cell empty",
        "cell fail",
        "cell empty",
    ]
    evidence = [a for tag, a in page.tags if tag == "details" and a.get("class") == "evidence"]
    assert len(evidence) == 4
    assert "parser" in page.text("td")  # the failing cell says whose fault it is
    assert "Apple M2 Max" in page.text("table")  # provenance
    assert "vllm-mlx 0.6.0" in page.text("table")


def test_changes_against_a_baseline_are_marked(build_matrix):
    base = build_matrix(
        [
            ("tiny-chat", "bf16", "inference", "direct", "pass"),
            ("tiny-chat", "bf16", "tool_calling", "direct", "fail"),
            ("tiny-chat", "bf16", "thinking", "direct", "pass"),
        ],
        run_id="base-run",
    )
    new = build_matrix(
        [
            ("tiny-chat", "bf16", "inference", "direct", "fail"),
            ("tiny-chat", "bf16", "tool_calling", "direct", "pass"),
            ("tiny-chat", "bf16", "streaming", "direct", "pass"),
        ],
        run_id="new-run",
    )
    page = parse(render_html(new, baseline=base))
    badges = [
        attrs["class"]
        for tag, attrs in page.tags
        if tag == "span" and "badge" in (attrs.get("class") or "")
    ]
    assert "badge regression" in badges
    assert "badge fixed" in badges
    assert "badge new" in badges
    text = page.text("body")
    # thinking passed in the baseline and is missing now: a regression, shown as "missing"
    assert "2 regressions, 1 fix, 0 changed, 1 new, 0 removed" in text
    assert "missing: the new matrix has no such cell" in text
    assert "<td>pass</td><td>missing</td>" in render_html(new, baseline=base)
    assert "base-run" in text


def test_models_are_ranked_with_their_passes_failures_and_speed(build_matrix):
    matrix = build_matrix(
        [
            ("slow-good", "4bit", "inference", "direct", "pass"),
            ("slow-good", "4bit", "tool_calling", "direct", "pass"),
            ("fast-broken", "4bit", "inference", "direct", "pass"),
            ("fast-broken", "4bit", "tool_calling", "direct", "fail"),
            ("fast-broken", "4bit", "thinking", "direct", "skip"),
        ],
        rows=[
            {"model": "slow-good", "quant": "4bit", "ttft_s": 0.9, "decode_tokens_per_s": 20.0},
            {"model": "fast-broken", "quant": "4bit", "ttft_s": 0.1, "startup_s": 3.0},
        ],
    )
    page = parse(render_html(matrix))
    summary = page.text("tbody")

    # More passes among the cells that apply rank first, whatever the speed.
    assert summary.index("#1") < summary.index("slow-good") < summary.index("#2")
    assert summary.index("#2") < summary.index("fast-broken")
    assert "2 / 2" in summary
    assert "1 / 2" in summary  # the skip does not apply
    assert "1 skipped" in summary
    assert "900 ms" in summary
    assert "100 ms" in summary
    assert "20" in summary
    charts = page.text("svg")
    assert "slow-good [4bit]" in charts
    assert "100 ms" in charts  # the time-to-first-token chart
    assert "vllm-mlx 0.6.0" in page.text("table")  # the server, with the run's version


def test_a_failing_cell_shows_its_reason_and_whose_fault_without_opening_anything(build_matrix):
    matrix = build_matrix(
        [
            ("qwen", "4bit", "tool_calling", "direct", "fail"),
            ("qwen", "4bit", "tool_calling", "proxied", "fail"),
            ("qwen", "4bit", "inference", "direct", "pass"),
        ]
    )
    html = render_html(matrix)
    page = parse(html)
    assert [attrs["class"] for attrs in page.cells()] == ["cell pass", "cell fail"]
    # Both routes failed alike: one line for both, outside the evidence panel.
    outside = html.split('<td class="cell fail">', 1)[1].split('<details class="evidence">')[0]
    assert "✗ fail" in outside
    assert outside.count("✗ fail") == 2
    assert "tool_calling failed" not in outside  # the reason comes after the routes
    after = html.split('<td class="cell fail">', 1)[1].split("</td>", 1)[0]
    reason_line = after.split('<div class="why fail"', 1)[1].split("</div>", 1)[0]
    assert "both:" in reason_line
    assert '<span class="blame" title="whose fault">parser</span>' in reason_line
    assert "tool_calling failed" in reason_line


def test_evidence_reads_as_a_request_and_a_response(make_run):
    page = parse(render_html(hostile_matrix(make_run)))
    text = page.text("details")
    assert "Request" in text
    assert "Response" in text
    roles = [attrs for tag, attrs in page.tags if tag == "div" and attrs.get("class") == "msg user"]
    assert roles  # the message is shown as a transcript line, not as JSON
    assert "What is the weather?" in page.text("div")
    assert HOSTILE in page.text("dd")  # the response content, as text


def test_an_older_matrix_without_performance_figures_says_they_are_missing(build_matrix):
    matrix = build_matrix(
        [("qwen", "4bit", "inference", "direct", "pass")],
        rows=[{"model": "qwen", "quant": "4bit", "startup_s": 4.0, "memory_mb": 900.0}],
    )
    text = parse(render_html(matrix)).text("body")
    assert "Not in this matrix: time to first token, decode, prompt processing" in text
    assert "Startup" in text


def test_rows_that_name_their_server_are_summarised_per_server(build_matrix):
    """Rows carry no server field yet; one added later is read when present."""
    matrix = build_matrix(
        [
            ("qwen", "4bit", "inference", "direct", "pass"),
            ("qwen-gguf", "q4", "inference", "direct", "fail"),
        ],
        rows=[
            {"model": "qwen", "quant": "4bit", "ttft_s": 0.2},
            {"model": "qwen-gguf", "quant": "q4", "ttft_s": 0.4},
        ],
    )
    summaries = model_summaries(matrix)
    assert [s.server for s in summaries] == ["vllm-mlx 0.6.0", "vllm-mlx 0.6.0"]
    other = next(s.row for s in summaries if s.row.model == "qwen-gguf")
    object.__setattr__(other, "server", "llama.cpp")  # what a later schema may carry

    servers = server_summaries(model_summaries(matrix))

    assert [(s.server, s.models, s.passed, s.applicable, s.ttft_s) for s in servers] == [
        ("llama.cpp", 1, 0, 1, 0.4),
        ("vllm-mlx 0.6.0", 1, 1, 1, 0.2),
    ]


def test_column_headers_carry_the_declared_title(build_matrix):
    """The column's title comes from the capability declaration; an unknown one keeps its name."""
    matrix = build_matrix(
        [
            ("m", "4bit", "tool_result", "direct", "pass"),
            ("m", "4bit", "homegrown", "direct", "pass"),
        ]
    )
    headers = {
        attrs.get("title")
        for tag, attrs in parse(render_html(matrix)).tags
        if tag == "th" and attrs.get("scope") == "row"
    }
    assert headers == {"Tool result", "homegrown"}
