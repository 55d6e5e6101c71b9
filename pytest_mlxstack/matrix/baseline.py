"""Which earlier matrix a run is compared with, and on which cells.

A run is compared only with a run of the same machine profile (a laptop's matrix says nothing
about a CI runner's), and only on the cells it selected: a model or a route (suite) this run did
not run is not a regression. The plugin's summary and the main job use the same two functions,
so they always name the same baseline.
"""

from __future__ import annotations

from pathlib import Path

from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, load_matrix
from pytest_mlxstack.matrix.store import LATEST_JSON, RUNS_DIR

SCANNED_RUNS = 50  # how many of the newest run files are looked at, at most


def previous_matrix(
    directory: Path, profile: str, *, exclude: str | None = None
) -> tuple[Path, Matrix] | None:
    """The newest matrix under ``directory`` with a row of ``profile``: its run files
    (``runs/*.json``, newest written first), then ``latest.json``; a matrix of run
    ``exclude`` (the run being compared) and unreadable files are passed over."""
    runs = sorted((directory / RUNS_DIR).glob("*.json"), key=_written_at, reverse=True)
    for path in [*runs[:SCANNED_RUNS], directory / LATEST_JSON]:
        if not path.is_file():
            continue
        try:
            matrix = load_matrix(path)
        except MatrixFormatError:
            continue
        if exclude is not None and any(run.run_id == exclude for run in matrix.runs):
            continue
        if any(row.profile == profile for row in matrix.rows):
            return path, matrix
    return None


def within_selection(baseline: Matrix, new: Matrix) -> Matrix:
    """``baseline`` reduced to what ``new`` ran: the rows (model, quant, profile) it has and,
    in each, the routes it recorded. What remains is compared cell by cell, so a pass that
    vanished from a route the run did select is still a regression."""
    selected = {(row.key, cell.route) for row in new.rows for cell in row.cells}
    rows = []
    for row in baseline.rows:
        cells = [cell for cell in row.cells if (row.key, cell.route) in selected]
        if cells:
            rows.append(row.model_copy(update={"cells": cells}))
    return baseline.model_copy(update={"rows": rows})


def _written_at(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
