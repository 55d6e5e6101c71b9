"""Render a matrix as one self-contained HTML page a person can pick a model from.

Layout, for up to six models at 1,400 px without horizontal scrolling: a ranked summary per
model and per server, performance charts (inline SVG), then the capability grid transposed
(capabilities as rows, one column per model, each cell showing every route side by side with
its verdict, a failure's one-line reason and whose fault it is). Evidence opens in place as a
readable request/response view. With history, each route shows its verdicts over the last runs.

Rendered by jinja2 with autoescaping always on: evidence holds model output, which is
untrusted, so a ``<script>`` in a response must reach the page as text. Nothing derived from a
matrix is marked safe; only the page's own stylesheet and script (package files) are, and the
Content-Security-Policy pins both by their sha256, so no other style or script can run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlparse

import jinja2

from pytest_mlxstack.matrix.capabilities import capability_rank, capability_title
from pytest_mlxstack.matrix.charts import METRICS, TrendMark, performance_charts, trend_marks
from pytest_mlxstack.matrix.diff import CellChange, CellKey, MatrixDiff, diff_matrices
from pytest_mlxstack.matrix.evidence_view import EvidenceSections, evidence_sections
from pytest_mlxstack.matrix.history import cell_trends
from pytest_mlxstack.matrix.model import Cell, Matrix, Row
from pytest_mlxstack.matrix.readiness import AGENTS, row_readiness, server_readiness
from pytest_mlxstack.matrix.summary import (
    ModelSummary,
    model_summaries,
    server_of,
    server_summaries,
)

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("pytest_mlxstack.matrix", "templates"),
    autoescape=True,  # not select_autoescape: the template's .j2 suffix must not turn it off
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

_CHANGE_LABELS = {"regression": "regression", "fix": "fixed", "new": "new", "changed": "changed"}
_EXPECTATION_LABELS = {
    "known_failure": "known failure",
    "unexpected_pass": "unexpected pass",
    "mismatch": "differs from expectation",
    "as_expected": "",
}
_SYMBOLS = {"pass": "✓", "fail": "✗", "skip": "?", "na": "·", "absent": ""}
_WORST = ("fail", "pass", "skip", "na")


@dataclass
class Badge:
    css: str
    text: str
    title: str = ""


@dataclass
class EvidenceView:
    route: str
    verdict: str
    css: str
    attribution: str | None
    reason: str
    test_id: str | None
    run_id: str | None
    duration: str
    tokens: str
    notes: list[str]
    sections: EvidenceSections
    evidence_json: str
    expectation_status: str | None = None
    expectation_reason: str = ""
    expectation_link: str | None = None


@dataclass
class RouteView:
    route: str
    verdict: str  # empty when the route has no cell
    css: str
    symbol: str
    title: str
    trend: list[TrendMark] = field(default_factory=list)


@dataclass
class Reason:
    routes: str
    css: str
    attribution: str | None
    text: str


@dataclass
class CellView:
    css: str
    title: str
    routes: list[RouteView]
    reasons: list[Reason]
    badges: list[Badge]
    evidence: list[EvidenceView]


@dataclass
class GridRow:
    capability: str
    cells: list[CellView | None]


@dataclass
class ModelView:
    rank: int
    model: str
    quant: str
    profile: str
    source: str
    server: str
    passed: int
    applicable: int
    skipped: int
    not_applicable: int
    share_width: float
    failing: list[tuple[str, str]]
    startup: str
    memory: str
    ttft: str
    decode: str
    prompt: str
    server_starts: str


@dataclass(frozen=True)
class Asset:
    text: str  # rendered with | safe: a package file, never matrix data
    digest: str  # CSP source expression: 'sha256-...'


def render_html(
    matrix: Matrix,
    *,
    baseline: Matrix | None = None,
    history: Sequence[Matrix] = (),
    title: str | None = None,
) -> str:
    """The whole page; with ``baseline``, cells carry their change and a changes table follows;
    with ``history`` (earlier matrices), each route shows its verdicts over the last runs."""
    matrix = matrix.redacted()
    baseline = baseline.redacted() if baseline is not None else None
    history = [past.redacted() for past in history]
    diff = diff_matrices(baseline, matrix) if baseline is not None else None
    changes = diff.by_key() if diff is not None else {}
    trends = cell_trends(matrix, history) if history else {}
    summaries = model_summaries(matrix)
    rows = [summary.row for summary in summaries]  # columns in rank order
    routes = sorted({cell.route.value for _, cell in matrix.iter_cells()})
    capabilities = sorted({cell.capability for _, cell in matrix.iter_cells()}, key=capability_rank)
    grid = [
        GridRow(
            capability=capability,
            cells=[_cell_view(row, capability, routes, changes, trends) for row in rows],
        )
        for capability in capabilities
    ]
    style, script = _asset("matrix.css"), _asset("matrix.js")
    template = _ENVIRONMENT.get_template("matrix.html.j2")
    return template.render(
        title=title or "Compatibility matrix",
        style=style,
        script=script,
        csp=(
            f"default-src 'none'; style-src {style.digest}; script-src {script.digest}; "
            f"img-src 'none'; base-uri 'none'; form-action 'none'"
        ),
        runs=[_run_view(run.model_dump(mode="json")) for run in matrix.runs],
        models=[_model_view(summary) for summary in summaries],
        servers=server_summaries(summaries),
        agents=[agent.name for agent in AGENTS],
        readiness=_readiness_view(rows, matrix),
        server_readiness=[entry.line() for entry in server_readiness(matrix)],
        charts=performance_charts(summaries),
        unmeasured=[
            metric.title.lower()
            for metric in METRICS
            if all(getattr(row, metric.field) is None for row in matrix.rows)
        ],
        routes=routes,
        grid=grid,
        history_runs=max((len(trend) for trend in trends.values()), default=0),
        titles={
            capability: capability_title(capability) for capability, _ in matrix.capabilities()
        },
        counts=matrix.verdict_counts(),
        unexpected=len(matrix.unexpected_passes()),
        diff=diff,
        diff_rows=_diff_rows(diff),
        baseline_runs=[run.run_id for run in baseline.runs] if baseline is not None else [],
        conflicts=[c.model_dump(mode="json") for c in matrix.conflicts],
    )


@cache
def _asset(name: str) -> Asset:
    """The page's own stylesheet or script, and the hash the CSP pins it by."""
    text = (resources.files("pytest_mlxstack.matrix") / "templates" / name).read_text("utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return Asset(text=text, digest=f"'sha256-{digest}'")


def _detail(line: str) -> str:
    """A readiness line without the verdict the cell shows already."""
    for prefix in ("not ready, because ", "ready "):
        if line.startswith(prefix):
            rest = line.removeprefix(prefix)
            return rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest
    return line


def _readiness_view(rows: list[Row], matrix: Matrix) -> list[dict[str, Any]]:
    """Per model (in rank order), each agent's readiness: its class and its line."""
    found = []
    for row in rows:
        agents = row_readiness(row)
        if not any(readiness.probed for readiness in agents):
            continue
        found.append(
            {
                "model": row.model,
                "quant": row.quant,
                "server": server_of(row, matrix),
                "agents": [
                    {
                        "css": "pass" if r.ready else ("fail" if r.probed else "skip"),
                        "word": "ready" if r.ready else ("not ready" if r.probed else "not probed"),
                        "line": _detail(r.line().split(": ", 1)[1]),
                    }
                    for r in agents
                ],
            }
        )
    return found


def _model_view(summary: ModelSummary) -> ModelView:
    row = summary.row
    source = row.repo or ""
    if row.revision:
        source = f"{source}@{row.revision}" if source else row.revision
    return ModelView(
        rank=summary.rank,
        model=row.model,
        quant=row.quant,
        profile=row.profile,
        source=source,
        server=summary.server,
        passed=summary.passed,
        applicable=summary.applicable,
        skipped=summary.skipped,
        not_applicable=summary.not_applicable,
        share_width=round(summary.share * 100, 1),
        failing=summary.failing,
        startup=_figure(row.startup_s, "{:.1f} s"),
        memory=_figure(row.memory_mb, "{:,.0f} MB"),
        ttft=_figure(row.ttft_s * 1000 if row.ttft_s is not None else None, "{:,.0f} ms"),
        decode=_figure(row.decode_tokens_per_s, "{:,.0f}"),
        prompt=_figure(row.prompt_tokens_per_s, "{:,.0f}"),
        server_starts=str(row.server_starts) if row.server_starts is not None else "",
    )


def _cell_view(
    row: Row,
    capability: str,
    routes: list[str],
    changes: dict[CellKey, CellChange],
    trends: dict[tuple[str, str, str, str, str, str], list[str | None]],
) -> CellView | None:
    cells = {route: row.cell(capability, route) for route in routes}
    recorded = {route: cell for route, cell in cells.items() if cell is not None}
    if not recorded:
        return None
    route_views: list[RouteView] = []
    badges: list[tuple[str, Badge]] = []
    evidence: list[EvidenceView] = []
    for route in routes:
        cell = cells[route]
        key = (row.model, row.quant, row.server, row.profile, capability, route)
        if cell is None:
            route_views.append(RouteView(route, "", "absent", "", f"{route}: not measured"))
            continue
        css = _css(cell.verdict.value)
        blame = f" ({cell.attribution.value})" if cell.attribution else ""
        route_views.append(
            RouteView(
                route=route,
                verdict=cell.verdict.value,
                css=css,
                symbol=_SYMBOLS[css],
                title=f"{route}: {cell.verdict.value}{blame}",
                trend=trend_marks(trends[key]) if key in trends else [],
            )
        )
        badges.extend((route, badge) for badge in _badges(cell, changes.get(key)))
        evidence.append(_evidence_view(cell))
    verdicts = {_css(cell.verdict.value) for cell in recorded.values()}
    return CellView(
        css=next(css for css in _WORST if css in verdicts),
        title=f"{capability} · {row.model} [{row.quant}]",
        routes=route_views,
        reasons=_reasons(recorded),
        badges=_merge_badges(badges, len(recorded)),
        evidence=evidence,
    )


def _reasons(recorded: dict[str, Cell]) -> list[Reason]:
    """The one-line reason of each failing or skipped route; routes that failed alike share
    one line."""
    grouped: dict[tuple[str, str | None, str], list[str]] = {}
    for route, cell in recorded.items():
        if cell.verdict.value in ("fail", "skip") and (cell.reason or cell.attribution):
            attribution = cell.attribution.value if cell.attribution else None
            grouped.setdefault((cell.verdict.value, attribution, cell.reason), []).append(route)
    return [
        Reason(
            routes="both" if len(routes) > 1 and len(routes) == len(recorded) else "+".join(routes),
            css=verdict,
            attribution=attribution,
            text=reason,
        )
        for (verdict, attribution, reason), routes in grouped.items()
    ]


def _badges(cell: Cell, change: CellChange | None) -> list[Badge]:
    badges = []
    if change is not None and change.kind in _CHANGE_LABELS:
        label = _CHANGE_LABELS[change.kind]
        badges.append(Badge(label, label, f"was {change.before or 'absent'} in the baseline"))
    if cell.expectation is not None and _EXPECTATION_LABELS[cell.expectation.status]:
        status = cell.expectation.status
        badges.append(
            Badge(
                status.replace("_", "-"),
                _EXPECTATION_LABELS[status],
                f"expectations file: {cell.expectation.reason}",
            )
        )
    return badges


def _merge_badges(badges: list[tuple[str, Badge]], routes: int) -> list[Badge]:
    """One badge when every route of the cell has it; else each names its route."""
    merged: list[Badge] = []
    for route, badge in badges:
        alike = [r for r, b in badges if (b.css, b.text) == (badge.css, badge.text)]
        if routes > 1 and len(alike) == routes:
            if all((b.css, b.text) != (badge.css, badge.text) for b in merged):
                merged.append(badge)
        else:
            label = f"{badge.text} ({route})" if routes > 1 else badge.text
            merged.append(Badge(badge.css, label, badge.title))
    return merged


def _evidence_view(cell: Cell) -> EvidenceView:
    evidence = cell.evidence.model_dump(mode="json")
    tokens = [
        f"{count} {name} tokens"
        for name, count in (
            ("prompt", cell.evidence.prompt_tokens),
            ("completion", cell.evidence.completion_tokens),
        )
        if count is not None
    ]
    view = EvidenceView(
        route=cell.route.value,
        verdict=cell.verdict.value,
        css=_css(cell.verdict.value),
        attribution=cell.attribution.value if cell.attribution else None,
        reason=cell.reason,
        test_id=cell.test_id,
        run_id=cell.run_id,
        duration=_figure(cell.evidence.duration_s, "{:.3f} s"),
        tokens=", ".join(tokens),
        notes=list(cell.evidence.notes),
        sections=evidence_sections(evidence),
        evidence_json=json.dumps(evidence, indent=2, ensure_ascii=False, sort_keys=True),
    )
    if cell.expectation is not None:
        view.expectation_status = _EXPECTATION_LABELS[cell.expectation.status] or "as expected"
        view.expectation_reason = cell.expectation.reason
        if cell.expectation.attribution is not None:
            expected = f"expected {cell.expectation.verdict.value} as "
            view.expectation_reason += f" ({expected}{cell.expectation.attribution.value})"
        view.expectation_link = _safe_link(cell.expectation.link)
    return view


def _css(verdict: str) -> str:
    return "na" if verdict == "n/a" else verdict


def _figure(value: float | None, shape: str) -> str:
    return shape.format(value) if value is not None else ""


def _run_view(run: dict[str, object]) -> dict[str, object]:
    memory = run.get("memory_bytes")
    run["memory"] = f"{int(memory) / 2**30:.1f} GiB" if isinstance(memory, int) else ""
    versions = run.get("versions")
    run["version_list"] = (
        [f"{name} {version or 'not installed'}" for name, version in versions.items()]
        if isinstance(versions, dict)
        else []
    )
    return run


def _diff_rows(diff: MatrixDiff | None) -> list[CellChange]:
    return list(diff.changes) if diff is not None else []


def _safe_link(link: str | None) -> str | None:
    """Only http(s) links become hrefs: a ``javascript:`` URL must never be clickable."""
    if link is None:
        return None
    parsed = urlparse(link)
    return link if parsed.scheme in ("http", "https") and parsed.netloc else None
