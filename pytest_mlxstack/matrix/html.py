"""Render a matrix as one self-contained HTML page (inline CSS, no script, no network).

Rendered by jinja2 with autoescaping always on: evidence holds model output, which is
untrusted, so a ``<script>`` in a response must reach the page as text. The template only ever
receives plain strings and numbers prepared here; nothing is marked safe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlparse

import jinja2

from pytest_mlxstack.matrix.capabilities import capability_title
from pytest_mlxstack.matrix.diff import CellChange, CellKey, MatrixDiff, diff_matrices
from pytest_mlxstack.matrix.model import Cell, Matrix, Row

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


@dataclass
class CellView:
    verdict: str
    css: str
    attribution: str | None
    reason: str
    test_id: str | None
    run_id: str | None
    evidence_json: str
    change: str | None = None
    change_before: str | None = None
    expectation: str | None = None
    expectation_status: str | None = None
    expectation_reason: str = ""
    expectation_link: str | None = None


@dataclass
class RowView:
    model: str
    quant: str
    profile: str
    source: str
    startup: str
    memory: str
    server_starts: str
    cells: list[CellView | None] = field(default_factory=list)


def render_html(matrix: Matrix, *, baseline: Matrix | None = None, title: str | None = None) -> str:
    """The whole page; with ``baseline``, cells carry their change and a changes table follows."""
    matrix = matrix.redacted()
    baseline = baseline.redacted() if baseline is not None else None
    diff = diff_matrices(baseline, matrix) if baseline is not None else None
    changes = diff.by_key() if diff is not None else {}
    columns = matrix.capabilities()
    rows = [_row_view(row, columns, changes) for row in matrix.rows]
    template = _ENVIRONMENT.get_template("matrix.html.j2")
    return template.render(
        title=title or "Compatibility matrix",
        runs=[_run_view(run.model_dump(mode="json")) for run in matrix.runs],
        columns=columns,
        titles={capability: capability_title(capability) for capability, _ in columns},
        rows=rows,
        counts=matrix.verdict_counts(),
        unexpected=len(matrix.unexpected_passes()),
        diff=diff,
        diff_rows=_diff_rows(diff),
        baseline_runs=[run.run_id for run in baseline.runs] if baseline is not None else [],
        conflicts=[c.model_dump(mode="json") for c in matrix.conflicts],
    )


def _row_view(
    row: Row, columns: list[tuple[str, str]], changes: dict[CellKey, CellChange]
) -> RowView:
    source = row.repo or ""
    if row.revision:
        source = f"{source}@{row.revision}" if source else row.revision
    view = RowView(
        model=row.model,
        quant=row.quant,
        profile=row.profile,
        source=source,
        startup=f"{row.startup_s:.1f} s" if row.startup_s is not None else "",
        memory=f"{row.memory_mb:.0f} MB" if row.memory_mb is not None else "",
        server_starts=str(row.server_starts) if row.server_starts is not None else "",
    )
    for capability, route in columns:
        cell = row.cell(capability, route)
        change = changes.get((row.model, row.quant, row.profile, capability, route))
        view.cells.append(_cell_view(cell, change) if cell is not None else None)
    return view


def _cell_view(cell: Cell, change: CellChange | None) -> CellView:
    evidence = cell.evidence.model_dump(mode="json")
    view = CellView(
        verdict=cell.verdict.value,
        css="na" if cell.verdict.value == "n/a" else cell.verdict.value,
        attribution=cell.attribution.value if cell.attribution else None,
        reason=cell.reason,
        test_id=cell.test_id,
        run_id=cell.run_id,
        evidence_json=json.dumps(evidence, indent=2, ensure_ascii=False, sort_keys=True),
    )
    if change is not None and change.kind in _CHANGE_LABELS:
        view.change = _CHANGE_LABELS[change.kind]
        view.change_before = change.before
    if cell.expectation is not None:
        view.expectation = _EXPECTATION_LABELS[cell.expectation.status] or None
        view.expectation_status = cell.expectation.status
        view.expectation_reason = cell.expectation.reason
        if cell.expectation.attribution is not None:
            expected = f"expected {cell.expectation.verdict.value} as "
            view.expectation_reason += f" ({expected}{cell.expectation.attribution.value})"
        view.expectation_link = _safe_link(cell.expectation.link)
    return view


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
