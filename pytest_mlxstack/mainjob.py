"""The main job: all four tiers on the fixture catalog against the real stack, one matrix.

``python -m pytest_mlxstack.mainjob [--matrix-dir DIR] [--kinds K,...] [-- PYTEST_ARGS...]``
runs pytest (in a subprocess, so that the job itself does not depend on pytest's in-process
state) once per managed server kind (default: vllm-mlx and mlx-lm, where installed; llama.cpp
by ``--kinds``, where its ``llama-server`` is found), each with the built-in
smoke, integration and harness suites (``--mlx-suites``) on the fixture catalog, the known
failures of ``suites/fixture_expectations.yaml`` (the negative controls' and each server's),
and its matrix written under ``DIR/servers/<kind>/``; the first run also runs the tier-1
catalog checks (``--mlx-catalog``). The runs' matrices are then merged into one (rows keyed by
server, so the same model on two servers sits side by side) and written to ``DIR`` as
``latest.json`` and ``latest.html``. It streams pytest's progress, then prints a one-screen
summary with the regressions against the baseline (``--baseline``, else ``DIR``'s previous
``latest.json`` of this machine profile). Exit status: the first non-zero pytest status (an
unexpected failure), or 2 when a run wrote no matrix.
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
from pytest_mlxstack.matrix.history import recent_history
from pytest_mlxstack.matrix.html import render_html
from pytest_mlxstack.matrix.merge import merge_matrices
from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, Row, load_matrix
from pytest_mlxstack.matrix.store import LATEST_JSON, RUNS_DIR, MatrixWriteError, write_matrix
from pytest_mlxstack.stack.kinds import KIND_NAMES, KINDS
from pytest_mlxstack.text.terminal import one_line

EXPECTATIONS = Path(__file__).resolve().parent / "suites" / "fixture_expectations.yaml"
SHORT = {"pass": "ok", "n/a": "n/a", "skip": "skip"}
SERVERS_DIR = "servers"  # DIR/servers/<kind>/: each kind's own matrices, history and baseline


def pytest_command(
    catalog: Path,
    matrix_dir: Path,
    extra: Sequence[str] = (),
    *,
    kind: str = "vllm-mlx",
    catalog_tier: bool = True,
    python: str = sys.executable,
) -> list[str]:
    """The pytest invocation of the main job for one server kind (the benchmark runs the
    same one); ``catalog_tier`` adds the tier-1 catalog checks, which do not depend on it."""
    return [
        python,
        "-m",
        "pytest",
        *([f"--mlx-catalog={catalog}"] if catalog_tier else []),
        "--mlx-suites=all",
        f"--mlx-suite-catalog={catalog}",
        f"--mlx-server-kind={kind}",
        f"--mlx-expectations={EXPECTATIONS}",
        f"--mlx-matrix-dir={matrix_dir}",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


# What the main job runs by default, where installed: the kinds the stack extra brings (and
# CI runs). llama.cpp has no wheel; ``--kinds vllm-mlx,mlx-lm,llama.cpp`` adds it.
DEFAULT_KINDS = ("vllm-mlx", "mlx-lm")


def installed_kinds() -> list[str]:
    """The default kinds that can run here."""
    return [name for name in DEFAULT_KINDS if KINDS[name].installed()]


def parse_kinds(text: str) -> list[str]:
    """``--kinds``: a comma-separated list of managed kinds (argparse reports the error)."""
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in KINDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{unknown[0] if unknown else text!r} is not a server kind; use a comma-separated "
            f"list of {', '.join(KIND_NAMES)}"
        )
    return names


def summary_lines(
    matrix: Matrix, json_path: Path, baseline: tuple[Path, Matrix] | None = None
) -> list[str]:
    """The grid (capability x model, ``direct proxied``), starts, counts, the regressions
    against ``baseline`` (its path and matrix) and the failures nobody expected, in about one
    screen."""
    rows = matrix.rows
    columns = matrix.capabilities()
    capabilities = list(dict.fromkeys(capability for capability, _ in columns))
    servers = list(dict.fromkeys(row.server for row in rows))
    lines: list[str] = []
    for server in servers:
        if len(servers) > 1:
            lines += [*([""] if lines else []), f"server: {_server_label(matrix, server)}"]
        lines += _grid([row for row in rows if row.server == server], capabilities)
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


def _grid(rows: Sequence[Row], capabilities: Sequence[str]) -> list[str]:
    """Capabilities down, the rows' models across, ``direct proxied`` in each cell."""
    heads = [_model_label(row) for row in rows]
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
    return lines


def _server_label(matrix: Matrix, server: str) -> str:
    versions = {row.server_version for row in matrix.rows if row.server == server}
    version = next(iter(versions)) if len(versions) == 1 else None
    return one_line(f"{server} {version}" if version else server)


def _model_label(row: Row) -> str:
    return f"{one_line(row.model)} [{one_line(row.quant)}]"


def _label(row: Row) -> str:
    """``model [quant] @server`` for the terminal (the names come from the matrix file)."""
    return f"{_model_label(row)} @{one_line(row.server)}"


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
    parser.add_argument(
        "--kinds",
        type=parse_kinds,
        default=None,
        metavar="K,...",
        help=f"server kinds to run, comma-separated ({', '.join(KIND_NAMES)}; default: "
        f"{', '.join(DEFAULT_KINDS)}, where installed)",
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
    kinds = args.kinds or installed_kinds()
    if not kinds:
        print(
            f"mainjob: no server kind is installed here ({', '.join(KIND_NAMES)}); install "
            "pytest-mlxstack[stack]",
            file=sys.stderr,
        )
        return 2
    matrix_dir = args.matrix_dir.resolve()
    extra = [*args.pytest_args]
    if args.baseline is not None:
        extra.append(f"--mlx-baseline={args.baseline}")
    started = time.time()
    matrices, status = [], 0
    for number, kind in enumerate(kinds):
        kind_dir = matrix_dir / SERVERS_DIR / kind
        command = pytest_command(catalog, kind_dir, extra, kind=kind, catalog_tier=number == 0)
        print(f"mainjob: {kind}: " + " ".join(command), flush=True)
        began = time.time()
        run_status = subprocess.call(command, env=os.environ.copy())
        status = status or run_status
        matrix = _fresh_matrix(kind_dir, began)
        if matrix is None:
            print(
                f"mainjob: {kind}: no matrix was written to {kind_dir} (pytest exit status "
                f"{run_status})"
            )
            return run_status or 2
        print(f"mainjob: {kind}: matrix in {time.time() - began:.1f} s", flush=True)
        matrices.append(matrix)
    merged = merge_matrices(matrices).matrix
    baseline = chosen_baseline(matrix_dir, merged, args.baseline)
    history, _ = recent_history(matrix_dir / RUNS_DIR)
    page = render_html(merged, baseline=baseline[1] if baseline else None, history=history)
    try:
        written = write_matrix(merged, matrix_dir, html=page)
    except MatrixWriteError as exc:
        print(f"mainjob: {exc}", file=sys.stderr)
        return 2
    elapsed = time.time() - started
    print()
    print(
        f"===== mainjob: matrix of {len(kinds)} server kind(s) in {elapsed:.1f} s, pytest exit "
        f"status {status} ====="
    )
    for line in summary_lines(merged, written.json_path, baseline):
        print(line)
    return status


def _fresh_matrix(directory: Path, since: float) -> Matrix | None:
    """The matrix a run just wrote to ``directory`` (None: it wrote none, or an old one)."""
    latest = directory / LATEST_JSON
    if not latest.is_file() or latest.stat().st_mtime < since:
        return None
    try:
        return load_matrix(latest)
    except MatrixFormatError as exc:
        print(f"mainjob: {exc}", file=sys.stderr)
        return None


def _fixture_catalog() -> Path | None:
    try:
        from pytest_mlxstack.fixture_models import fixture_catalog_path
    except ImportError:
        return None
    return fixture_catalog_path()


if __name__ == "__main__":
    sys.exit(main())
