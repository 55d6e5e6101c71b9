"""Merge matrices from several machines or runs (e.g. a nightly job over hardware) into one.

Rows are keyed by (model, quant, server, machine profile), cells by (capability, route). When two
inputs hold the same cell, the one from the newer run wins (run time, then run id): the result
does not depend on the order the files were given in. Disagreements (different verdicts,
repositories or revisions) are returned as ``MergeConflict``s and kept in the merged matrix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_mlxstack.matrix.model import (
    PERFORMANCE_FIELDS,
    Cell,
    Matrix,
    MergeConflict,
    Row,
    RunMetadata,
)

RunRank = tuple[str, str]  # (created_at, run_id): ISO UTC strings sort chronologically


@dataclass
class MergeResult:
    matrix: Matrix
    conflicts: list[MergeConflict] = field(default_factory=list)
    duplicates: int = 0  # cells present in several inputs with the same verdict


@dataclass
class _Candidate:
    rank: RunRank
    tie: str  # canonical JSON, so that equal ranks still order deterministically
    run_id: str

    def key(self) -> tuple[RunRank, str]:
        return (self.rank, self.tie)


def merge_matrices(matrices: Sequence[Matrix]) -> MergeResult:
    if not matrices:
        raise ValueError("merge needs at least one matrix")
    runs = _merged_runs(matrices)
    ranks = {run.run_id: (run.created_at, run.run_id) for run in runs}
    result = MergeResult(matrix=Matrix(runs=runs))

    rows: dict[tuple[str, ...], tuple[Row, _Candidate]] = {}
    cells: dict[tuple[str, ...], dict[tuple[str, str], tuple[Cell, _Candidate]]] = {}
    for matrix in matrices:
        newest = max((ranks[run.run_id] for run in matrix.runs), default=("", ""))
        for row in matrix.rows:
            row_candidate = _Candidate(
                newest, _canonical(row.model_dump(exclude={"cells"})), newest[1]
            )
            known = rows.get(row.key)
            if known is None:
                rows[row.key] = (row, row_candidate)
            else:
                rows[row.key] = _pick_row(known, (row, row_candidate), result)
            slots = cells.setdefault(row.key, {})
            for cell in row.cells:
                rank = ranks.get(cell.run_id or "", newest)
                candidate = _Candidate(rank, _canonical(cell.model_dump(mode="json")), rank[1])
                other = slots.get(cell.key)
                slots[cell.key] = (
                    (cell, candidate)
                    if other is None
                    else _pick_cell(row.key, other, (cell, candidate), result)
                )

    merged_rows = [
        row.model_copy(update={"cells": [cell for cell, _ in cells[key].values()]})
        for key, (row, _) in rows.items()
    ]
    previous = [c for m in matrices for c in m.conflicts]
    conflicts = _unique(previous + sorted(result.conflicts, key=_conflict_order))
    result.conflicts = sorted(result.conflicts, key=_conflict_order)
    result.matrix = Matrix(runs=runs, rows=merged_rows, conflicts=conflicts).sorted()
    return result


def _merged_runs(matrices: Sequence[Matrix]) -> list[RunMetadata]:
    by_id: dict[str, RunMetadata] = {}
    for matrix in matrices:
        for run in matrix.runs:
            by_id.setdefault(run.run_id, run)
    return sorted(by_id.values(), key=lambda run: (run.created_at, run.run_id))


def _pick_cell(
    row_key: tuple[str, ...],
    first: tuple[Cell, _Candidate],
    second: tuple[Cell, _Candidate],
    result: MergeResult,
) -> tuple[Cell, _Candidate]:
    kept, dropped = sorted((first, second), key=lambda pair: pair[1].key(), reverse=True)
    if kept[0].verdict is dropped[0].verdict:
        result.duplicates += 1
    else:
        result.conflicts.append(
            MergeConflict(
                row=row_key,
                field=f"{kept[0].capability} ({kept[0].route.value})",
                kept=kept[0].verdict.value,
                dropped=dropped[0].verdict.value,
                kept_run=kept[1].run_id,
                dropped_run=dropped[1].run_id,
            )
        )
    return kept


def _pick_row(
    first: tuple[Row, _Candidate], second: tuple[Row, _Candidate], result: MergeResult
) -> tuple[Row, _Candidate]:
    """The newer row's facts win; a different repository or revision is a conflict."""
    kept, dropped = sorted((first, second), key=lambda pair: pair[1].key(), reverse=True)
    for name in ("repo", "revision"):
        new, old = getattr(kept[0], name), getattr(dropped[0], name)
        if new is not None and old is not None and new != old:
            result.conflicts.append(
                MergeConflict(
                    row=kept[0].key,
                    field=name,
                    kept=new,
                    dropped=old,
                    kept_run=kept[1].run_id,
                    dropped_run=dropped[1].run_id,
                )
            )
    # Facts the newer run did not measure are taken from the older one.
    filled = {
        name: getattr(dropped[0], name)
        for name in (
            "repo",
            "revision",
            "startup_s",
            "memory_mb",
            "server_starts",
            *PERFORMANCE_FIELDS,
        )
        if getattr(kept[0], name) is None
    }
    return kept[0].model_copy(update=filled), kept[1]


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def _conflict_order(conflict: MergeConflict) -> tuple[str, ...]:
    return (*conflict.row, conflict.field)


def _unique(conflicts: list[MergeConflict]) -> list[MergeConflict]:
    seen: set[str] = set()
    unique = []
    for conflict in conflicts:
        marker = _canonical(conflict.model_dump(mode="json"))
        if marker not in seen:
            seen.add(marker)
            unique.append(conflict)
    return unique
