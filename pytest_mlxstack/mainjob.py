"""The main job: all four tiers on the fixture catalog against the real stack, one matrix.

``python -m pytest_mlxstack.mainjob [--matrix-dir DIR] [-- PYTEST_ARGS...]`` runs pytest (in
a subprocess, so that the job itself does not depend on pytest's in-process state) with the
tier-1 catalog checks (``--mlx-catalog``) and the built-in smoke, integration and harness
suites (``--mlx-suites``) on the fixture catalog, the negative controls' known failures from
``suites/fixture_expectations.yaml``, and the matrix written under ``matrices/``. It streams
pytest's progress, then prints a one-screen summary, with the regressions against the
baseline the plugin compared with (``--mlx-baseline`` among the pytest arguments, else the
matrix directory's previous ``latest.json``). Exit status: pytest's (non-zero on an
unexpected failure), or 2 when no matrix was written.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_mlxstack.matrix.baseline import previous_matrix, within_selection
from pytest_mlxstack.matrix.diff import diff_matrices, no_shared_cells
from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, Row, load_matrix
from pytest_mlxstack.matrix.store import LATEST_JSON, RUNS_DIR
from pytest_mlxstack.text.terminal import one_line

EXPECTATIONS = Path(__file__).resolve().parent / "suites" / "fixture_expectations.yaml"
SHORT = {"pass": "ok", "n/a": "n/a", "skip": "skip"}


def pytest_command(
    catalog: Path, matrix_dir: Path, extra: Sequence[str] = (), *, python: str = sys.executable
) -> list[str]:
    """The pytest invocation of the main job (the benchmark runs the same one)."""
    return [
        python,
        "-m",
        "pytest",
        f"--mlx-catalog={catalog}",
        "--mlx-suites=all",
        f"--mlx-suite-catalog={catalog}",
        f"--mlx-expectations={EXPECTATIONS}",
        f"--mlx-matrix-dir={matrix_dir}",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def summary_lines(
    matrix: Matrix, json_path: Path, baseline: tuple[Path, Matrix] | None = None
) -> list[str]:
    """The grid (capability x model, ``direct proxied``), starts, counts, the regressions
    against ``baseline`` (its path and matrix) and the failures nobody expected, in about one
    screen."""
    rows = matrix.rows
    columns = matrix.capabilities()
    capabilities = list(dict.fromkeys(capability for capability, _ in columns))
    heads = [_label(row) for row in rows]
    cells = {capability: [_pair(row, capability) for row in rows] for capability in capabilities}
    shown = {capability: one_line(capability) for capability in capabilities}
    first = max([len("capability (direct proxied)"), *map(len, shown.values())])
    widths = [
        max([len(head), *(len(cells[c][i]) for c in capabilities)]) for i, head in enumerate(heads)
    ]
    lines = ["  ".join(["capability (direct proxied)".ljust(first), *_padded(heads, widths)])]
    lines += [
        "  ".join([shown[capability].ljust(first), *_padded(cells[capability], widths)])
        for capability in capabilities
    ]
    starts = ", ".join(f"{_label(row)}: {row.server_starts}" for row in rows)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in matrix.verdict_counts().items())
    lines += [
        "",
        "ok = pass, UPPER = fail and whose fault, * = known failure, - = not run",
        f"cells: {counts}",
        f"server starts per model: {starts}",
    ]
    if baseline is not None:
        lines += regression_lines(*baseline, matrix)
    unexpected = [
        f"  {_label(row)} {one_line(cell.capability)} ({cell.route.value}): "
        f"{cell.attribution.value if cell.attribution else 'unattributed'}: "
        f"{one_line(cell.reason, 160)}"
        for row, cell in matrix.iter_cells()
        if cell.verdict.value == "fail"
        and not (cell.expectation and cell.expectation.status == "known_failure")
    ]
    if unexpected:
        lines += ["unexpected failures:", *unexpected]
    lines.append(f"matrix: {json_path}")
    html = json_path.with_suffix(".html")
    if html.is_file():
        lines.append(f"report: {html}")
    return lines


def _label(row: Row) -> str:
    """``model [quant]`` for the terminal (the names come from the matrix file)."""
    return f"{one_line(row.model)} [{one_line(row.quant)}]"


def regression_lines(baseline_path: Path, baseline: Matrix, matrix: Matrix) -> list[str]:
    """``against <baseline>: N regressions, ...`` (the diff's headline, on the cells this run
    selected), then one line per regression cell, as the plugin's terminal summary lists them."""
    baseline = within_selection(baseline, matrix)
    unrelated = no_shared_cells(
        baseline, matrix, base_name=str(baseline_path), new_name="this run's matrix"
    )
    if unrelated is not None:
        return [f"not compared: {unrelated}"]
    diff = diff_matrices(baseline, matrix)
    return [f"against {baseline_path}: {diff.headline()}", *diff.regression_lines()]


def chosen_baseline(
    matrix_dir: Path, matrix: Matrix, explicit: str | None
) -> tuple[Path, Matrix] | None:
    """What the plugin compared this run with: ``--baseline`` (``none``: nothing), else the
    newest earlier matrix of the same machine profile (``matrix.baseline.previous_matrix``)."""
    if explicit is not None:
        if explicit.strip().lower() == "none":
            return None
        path = Path(explicit).expanduser()
        try:
            return path, load_matrix(path)
        except MatrixFormatError:
            return None  # pytest said so already: a bad --mlx-baseline stops the run
    run = matrix.runs[-1]
    return previous_matrix(matrix_dir, run.profile, exclude=run.run_id)


def _pair(row: Row, capability: str) -> str:
    return " ".join(_short(row, capability, route) for route in ("direct", "proxied"))


def _short(row: Row, capability: str, route: str) -> str:
    cell = row.cell(capability, route)
    if cell is None:
        return "-"
    if cell.verdict.value != "fail":
        return SHORT[cell.verdict.value]
    text = (cell.attribution.value if cell.attribution else "fail").upper()
    known = cell.expectation is not None and cell.expectation.status == "known_failure"
    return text + "*" if known else text


def _padded(values: Sequence[str], widths: Sequence[int]) -> list[str]:
    return [value.ljust(width) for value, width in zip(values, widths, strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_mlxstack.mainjob",
        description="Run the four tiers on the fixture catalog and write the matrix.",
    )
    parser.add_argument(
        "--matrix-dir",
        type=Path,
        default=Path("matrices"),
        help="where the matrix JSON and HTML go (default: ./matrices)",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        default=None,
        help="catalog for every tier (default: the fixture catalog shipped with the plugin)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="PATH",
        help="matrix JSON to report regressions against, or 'none' (default: the newest "
        "earlier matrix of this machine profile in --matrix-dir)",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    catalog = args.catalog.resolve() if args.catalog is not None else _fixture_catalog()
    if catalog is None or not catalog.exists():
        print(
            f"mainjob: the catalog {catalog or 'of the fixture models'} does not exist; pass "
            f"--catalog PATH",
            file=sys.stderr,
        )
        return 2
    matrix_dir = args.matrix_dir.resolve()
    extra = [*args.pytest_args]
    if args.baseline is not None:
        extra.append(f"--mlx-baseline={args.baseline}")
    command = pytest_command(catalog, matrix_dir, extra)
    print("mainjob: " + " ".join(command), flush=True)
    started = time.time()
    status = subprocess.call(command, env=os.environ.copy())
    elapsed = time.time() - started
    latest = matrix_dir / LATEST_JSON
    if not latest.is_file() or latest.stat().st_mtime < started:
        print(f"mainjob: no matrix was written to {matrix_dir} (pytest exit status {status})")
        return status or 2
    try:
        matrix = load_matrix(latest)
    except MatrixFormatError as exc:
        print(f"mainjob: {exc}", file=sys.stderr)
        return 2
    json_path = _this_run(matrix_dir, matrix) or latest
    print()
    print(f"===== mainjob: matrix in {elapsed:.1f} s, pytest exit status {status} =====")
    baseline = chosen_baseline(matrix_dir, matrix, args.baseline)
    for line in summary_lines(matrix, json_path, baseline):
        print(line)
    return status


def _fixture_catalog() -> Path | None:
    try:
        from pytest_mlxstack.fixture_models import fixture_catalog_path
    except ImportError:
        return None
    return fixture_catalog_path()


def _this_run(matrix_dir: Path, matrix: Matrix) -> Path | None:
    """The timestamped file of this run (``latest.json`` is overwritten by the next one)."""
    path = matrix_dir / RUNS_DIR / f"{matrix.runs[-1].run_id}.json"
    return path if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
