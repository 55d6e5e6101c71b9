"""Per-model and per-server summaries: what a person compares to pick a model.

A cell *applies* when it passed or failed (a skip could not tell, ``n/a`` was not declared).
Models rank by the share of applicable cells they passed, then by more passes, then by the
shorter time to first token, then by name, so that the order is stable.

Rows carry the server they ran on (schema 4; older rows read as vllm-mlx), so one model on two
servers is two rows side by side, and the per-server table compares the servers.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from pytest_mlxstack.matrix.capabilities import capability_rank
from pytest_mlxstack.matrix.model import Matrix, Row

DEFAULT_SERVER = "vllm-mlx"


@dataclass
class ModelSummary:
    row: Row
    server: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    not_applicable: int = 0
    # whose fault -> the capabilities that failed for that reason (on any route)
    failing: list[tuple[str, str]] = field(default_factory=list)
    rank: int = 0

    @property
    def applicable(self) -> int:
        return self.passed + self.failed

    @property
    def share(self) -> float:
        return self.passed / self.applicable if self.applicable else 0.0


@dataclass
class ServerSummary:
    server: str
    models: int
    passed: int
    applicable: int
    startup_s: float | None
    memory_mb: float | None
    ttft_s: float | None
    decode_tokens_per_s: float | None
    prompt_tokens_per_s: float | None


def server_of(row: Row, matrix: Matrix) -> str:
    """The row's server kind and, when the run recorded it, its version."""
    kind = getattr(row, "server", None)
    name = kind if isinstance(kind, str) and kind.strip() else DEFAULT_SERVER
    if row.server_version:
        return f"{name} {row.server_version}"
    run_ids = {cell.run_id for cell in row.cells if cell.run_id}
    for run in matrix.runs:
        if run.run_id in run_ids or not run_ids:
            version = run.versions.get(name)
            if version:
                return f"{name} {version}"
    return name


def model_summaries(matrix: Matrix) -> list[ModelSummary]:
    """One summary per row, ranked (1 is the best)."""
    summaries = []
    for row in matrix.rows:
        summary = ModelSummary(row=row, server=server_of(row, matrix))
        failing: dict[str, set[str]] = {}  # attribution -> capabilities
        for cell in row.cells:
            verdict = cell.verdict.value
            if verdict == "pass":
                summary.passed += 1
            elif verdict == "fail":
                summary.failed += 1
                blame = cell.attribution.value if cell.attribution else "unattributed"
                failing.setdefault(blame, set()).add(cell.capability)
            elif verdict == "skip":
                summary.skipped += 1
            else:
                summary.not_applicable += 1
        summary.failing = [
            (blame, ", ".join(sorted(failing[blame], key=capability_rank)))
            for blame in sorted(failing, key=lambda b: (-len(failing[b]), b))
        ]
        summaries.append(summary)
    ordered = sorted(summaries, key=_rank_key)
    for number, summary in enumerate(ordered, start=1):
        summary.rank = number
    return ordered


def server_summaries(summaries: list[ModelSummary]) -> list[ServerSummary]:
    """One summary per server: totals of its models' cells, medians of their figures."""
    servers: dict[str, list[ModelSummary]] = {}
    for summary in summaries:
        servers.setdefault(summary.server, []).append(summary)
    return [
        ServerSummary(
            server=server,
            models=len(members),
            passed=sum(m.passed for m in members),
            applicable=sum(m.applicable for m in members),
            startup_s=_median([m.row.startup_s for m in members]),
            memory_mb=_median([m.row.memory_mb for m in members]),
            ttft_s=_median([m.row.ttft_s for m in members]),
            decode_tokens_per_s=_median([m.row.decode_tokens_per_s for m in members]),
            prompt_tokens_per_s=_median([m.row.prompt_tokens_per_s for m in members]),
        )
        for server, members in sorted(servers.items())
    ]


def _rank_key(summary: ModelSummary) -> tuple[float, int, float, str, str]:
    ttft = summary.row.ttft_s if summary.row.ttft_s is not None else float("inf")
    return (-summary.share, -summary.passed, ttft, summary.row.model, summary.row.quant)


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None
