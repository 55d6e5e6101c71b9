"""Earlier runs for the page's trends: each cell's verdicts over the last runs.

A history directory holds matrix JSON files (``matrices/runs/`` does). They are ordered by the
time their newest run finished; the matrix being rendered is always the last point, and a file
holding exactly its runs (its own copy in ``runs/``) is not counted twice. Cells are matched on
(model, quant, machine profile, capability, route), as ``matrix diff`` matches them: a run on
another machine is not this row's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, load_matrix

HISTORY_RUNS = 10  # points a trend shows, the rendered matrix included
CellKey = tuple[str, str, str, str, str, str]  # model, quant, server, profile, capability, route
Trend = list[str | None]  # verdict per run, oldest first; None: the run had no such cell


def load_history(directory: str | Path) -> list[Matrix]:
    """Every ``*.json`` matrix in ``directory`` (not its subfolders), oldest first.

    ``MatrixFormatError`` (one sentence naming the file) for a missing directory, a directory
    without matrices, or a file that is not a readable matrix."""
    folder = Path(directory)
    if not folder.is_dir():
        raise MatrixFormatError(
            f"{folder}: the history directory does not exist; pass a folder of matrix JSON "
            f"files such as matrices/runs"
        )
    files = sorted(folder.glob("*.json"))
    if not files:
        raise MatrixFormatError(
            f"{folder}: the history directory holds no matrix JSON file; pass a folder such "
            f"as matrices/runs"
        )
    return sorted((load_matrix(path) for path in files), key=_finished)


def recent_history(folder: str | Path) -> tuple[list[Matrix], list[str]]:
    """The newest ``HISTORY_RUNS - 1`` matrices of a ``runs/`` folder (file names start with
    the run's UTC time), for the page a pytest run writes; a file that cannot be read is left
    out and named in the returned problems instead of failing the run. No folder: nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        return [], []
    matrices, problems = [], []
    for path in sorted(folder.glob("*.json"))[-(HISTORY_RUNS - 1) :]:
        try:
            matrices.append(load_matrix(path))
        except MatrixFormatError as exc:
            problems.append(f"left out of the page's trends: {exc}")
    return sorted(matrices, key=_finished), problems


def cell_trends(matrix: Matrix, history: Sequence[Matrix]) -> dict[CellKey, Trend]:
    """For every cell of ``matrix``: its verdict in up to ``HISTORY_RUNS - 1`` earlier runs on
    the same machine profile (oldest first), then its verdict now. A run that holds other
    cells of the profile but not this one counts as "not recorded" (``None``)."""
    own = {run.run_id for run in matrix.runs}
    earlier = sorted((m for m in history if {run.run_id for run in m.runs} != own), key=_finished)
    per_profile: dict[str, list[dict[CellKey, str]]] = {}
    for profile in {row.profile for row in matrix.rows}:
        same = [m for m in earlier if any(row.profile == profile for row in m.rows)]
        per_profile[profile] = [_verdicts(m) for m in same[-(HISTORY_RUNS - 1) :]]
    trends: dict[CellKey, Trend] = {}
    for key, now in _verdicts(matrix).items():
        trends[key] = [past.get(key) for past in per_profile[key[3]]] + [now]
    return trends


def _verdicts(matrix: Matrix) -> dict[CellKey, str]:
    return {
        (row.model, row.quant, row.server, row.profile, cell.capability, cell.route.value): (
            cell.verdict.value
        )
        for row, cell in matrix.iter_cells()
    }


def _finished(matrix: Matrix) -> str:
    return max(run.created_at for run in matrix.runs)
