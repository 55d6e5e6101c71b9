"""``mlxstack matrix render | merge | diff | schema``: work with matrix files outside pytest.

Exit codes: 0 success; 1 ``diff`` found a regression (a pass that now fails or is missing);
2 bad input (one line on stderr), including a ``diff`` of two matrices without a common cell.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_mlxstack.cli import CliError
from pytest_mlxstack.matrix.diff import diff_matrices, no_shared_cells
from pytest_mlxstack.matrix.history import HISTORY_RUNS, load_history
from pytest_mlxstack.matrix.html import render_html
from pytest_mlxstack.matrix.merge import merge_matrices
from pytest_mlxstack.matrix.model import LEGACY_SERVER, Matrix, MatrixFormatError, load_matrix
from pytest_mlxstack.matrix.schema import schema_text
from pytest_mlxstack.matrix.store import write_matrix_file
from pytest_mlxstack.process.atomic import write_text_atomic
from pytest_mlxstack.text.terminal import one_line

EXIT_REGRESSION = 1


def register(subparsers: Any) -> None:
    matrix = subparsers.add_parser(
        "matrix", help="render, merge and diff compatibility matrices", description=__doc__
    )
    commands = matrix.add_subparsers(dest="matrix_command", metavar="SUBCOMMAND", required=True)

    render = commands.add_parser("render", help="write the HTML page of a matrix JSON")
    render.add_argument("matrix", type=Path, metavar="JSON")
    render.add_argument(
        "-o", "--output", type=Path, metavar="HTML", help="default: the JSON path with .html"
    )
    render.add_argument(
        "--baseline", type=Path, metavar="JSON", help="show changes against this matrix"
    )
    render.add_argument(
        "--history",
        type=Path,
        metavar="DIR",
        help=f"show each cell's verdicts over the last {HISTORY_RUNS} runs, read from the "
        "matrix JSON files in DIR (e.g. matrices/runs)",
    )
    render.set_defaults(handler=_render)

    merge = commands.add_parser("merge", help="merge matrices of several machines or runs into one")
    merge.add_argument("inputs", type=Path, nargs="+", metavar="JSON")
    merge.add_argument("-o", "--output", type=Path, metavar="OUT.json", required=True)
    merge.set_defaults(handler=_merge)

    diff = commands.add_parser(
        "diff",
        help="regressions and fixes from BASE to NEW; exit 1 on a regression (pass -> fail "
        "or missing), 2 when they share no cell",
    )
    diff.add_argument("base", type=Path, metavar="BASE")
    diff.add_argument("new", type=Path, metavar="NEW")
    diff.add_argument(
        "--markdown",
        metavar="FILE",
        help="also write a Markdown report (e.g. for a CI job summary); '-' prints it instead "
        "of the plain-text report",
    )
    diff.set_defaults(handler=_diff)

    schema = commands.add_parser("schema", help="print or write the matrix JSON Schema")
    schema.add_argument("-o", "--output", type=Path, metavar="FILE")
    schema.set_defaults(handler=_schema)


def _render(args: argparse.Namespace) -> int:
    matrix = _load(args.matrix)
    baseline = _load(args.baseline) if args.baseline is not None else None
    history = _load_history(args.history) if args.history is not None else []
    output: Path = args.output or args.matrix.with_suffix(".html")
    if output.resolve() == args.matrix.resolve():
        raise CliError(f"{output}: the HTML would overwrite the matrix JSON; pass -o PAGE.html")
    page = render_html(matrix, baseline=baseline, history=history)
    _write(output, lambda: write_text_atomic(output, page))
    print(f"wrote {output}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    matrices = [_load(path) for path in args.inputs]
    result = merge_matrices(matrices)
    _write(args.output, lambda: write_matrix_file(result.matrix, args.output))
    rows, cells = len(result.matrix.rows), len(result.matrix.iter_cells())
    print(
        f"merged {len(matrices)} matrices ({len(result.matrix.runs)} runs) into {args.output}: "
        f"{rows} rows, {cells} cells, {len(result.conflicts)} conflicts"
    )
    for conflict in result.conflicts:
        parts = [one_line(part) for part in conflict.row]
        model, quant, profile = parts[0], parts[1], parts[-1]
        server = f" ({parts[2]})" if len(parts) == 4 and parts[2] != LEGACY_SERVER else ""
        print(
            f"  conflict {model} [{quant}]{server} on {profile}, {one_line(conflict.field)}: kept "
            f"{one_line(str(conflict.kept))} (run {one_line(str(conflict.kept_run))}), dropped "
            f"{one_line(str(conflict.dropped))} (run {one_line(str(conflict.dropped_run))})"
        )
    return 0


def _diff(args: argparse.Namespace) -> int:
    base, new = _load(args.base), _load(args.new)
    unrelated = no_shared_cells(base, new, base_name=str(args.base), new_name=str(args.new))
    if unrelated is not None:
        raise CliError(unrelated)
    result = diff_matrices(base, new)
    markdown = result.to_markdown(base=str(args.base), new=str(args.new))
    if args.markdown == "-":
        sys.stdout.write(markdown)
    else:
        sys.stdout.write(result.to_text())
        if args.markdown:
            path = Path(args.markdown)
            _write(path, lambda: write_text_atomic(path, markdown))
    return EXIT_REGRESSION if result.has_regressions else 0


def _schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write(args.output, lambda: write_text_atomic(args.output, text))
        print(f"wrote {args.output}")
    return 0


def _load(path: Path) -> Matrix:
    try:
        return load_matrix(path)
    except MatrixFormatError as exc:
        raise CliError(str(exc)) from None


def _load_history(directory: Path) -> list[Matrix]:
    try:
        return load_history(directory)
    except MatrixFormatError as exc:
        raise CliError(str(exc)) from None


def _write(path: Path, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"cannot write {path} ({reason}); check the directory") from None
