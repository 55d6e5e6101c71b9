"""Geometry for the page's inline SVG: one bar chart per performance figure, and the small
squares of a cell's trend. Only numbers and plain labels leave here; the template draws them
(autoescaped) and the page's stylesheet colours them, so no style attribute is needed under
the page's hash-pinned Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_mlxstack.matrix.summary import ModelSummary

CHART_WIDTH = 440
LABEL_END = 168  # labels are right-aligned here
BAR_START = 174
BAR_SPACE = 190
ROW_HEIGHT = 22
BAR_HEIGHT = 13
LABEL_CHARS = 26
TREND_STEP = 6
TREND_SIZE = 5


@dataclass(frozen=True)
class Metric:
    field: str
    title: str
    lower_is_better: bool
    show: Callable[[float], str]


METRICS = (
    Metric("startup_s", "Startup", True, lambda v: f"{v:.1f} s"),
    Metric("memory_mb", "Memory (server RSS)", True, lambda v: f"{v:,.0f} MB"),
    Metric("ttft_s", "Time to first token", True, lambda v: f"{v * 1000:,.0f} ms"),
    Metric("decode_tokens_per_s", "Decode", False, lambda v: f"{v:,.0f} tok/s"),
    Metric("prompt_tokens_per_s", "Prompt processing", False, lambda v: f"{v:,.0f} tok/s"),
)


@dataclass(frozen=True)
class Bar:
    label: str
    full_label: str
    value: str
    y: int
    text_y: int
    width: float
    best: bool


@dataclass(frozen=True)
class Chart:
    title: str
    note: str
    height: int
    width: int
    bars: list[Bar]
    missing: list[str]  # models without this figure


@dataclass(frozen=True)
class TrendMark:
    x: int
    verdict: str  # pass, fail, skip, na or none (no such cell in that run)
    title: str
    now: bool


def performance_charts(summaries: Sequence[ModelSummary]) -> list[Chart]:
    """One chart per figure, bars in rank order; a figure nobody measured gets no chart."""
    charts = []
    for metric in METRICS:
        measured = [
            (s, float(value))
            for s in summaries
            if (value := getattr(s.row, metric.field, None)) is not None
        ]
        if not measured:
            continue
        values = [value for _, value in measured]
        top = max(values) or 1.0
        best = min(values) if metric.lower_is_better else max(values)
        bars = []
        for index, (summary, value) in enumerate(measured):
            full = f"{summary.row.model} [{summary.row.quant}]"
            y = 4 + index * ROW_HEIGHT
            bars.append(
                Bar(
                    label=_shorten(full),
                    full_label=f"{full} on {summary.server}: {metric.show(value)}",
                    value=metric.show(value),
                    y=y,
                    text_y=y + BAR_HEIGHT - 2,
                    width=round(max(value / top * BAR_SPACE, 1.0), 1),
                    best=metric.show(value) == metric.show(best) and len(measured) > 1,
                )
            )
        charts.append(
            Chart(
                title=metric.title,
                note="lower is better" if metric.lower_is_better else "higher is better",
                height=8 + len(bars) * ROW_HEIGHT,
                width=CHART_WIDTH,
                bars=bars,
                missing=[
                    f"{s.row.model} [{s.row.quant}]"
                    for s in summaries
                    if getattr(s.row, metric.field, None) is None
                ],
            )
        )
    return charts


def trend_marks(trend: Sequence[str | None]) -> list[TrendMark]:
    """Squares for a cell's verdicts, oldest first; the last is the rendered run."""
    last = len(trend) - 1
    return [
        TrendMark(
            x=index * TREND_STEP + 1,
            verdict="na" if verdict == "n/a" else (verdict or "none"),
            title=f"{'this run' if index == last else f'{last - index} run(s) before'}: "
            f"{verdict or 'not recorded'}",
            now=index == last,
        )
        for index, verdict in enumerate(trend)
    ]


def _shorten(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else "…" + label[-(LABEL_CHARS - 1) :]
