"""Write matrices so that a reader never sees half a file.

Every file goes to a temporary file in the target directory, is flushed and fsynced, then
``os.replace``d over the final name. A failure at any point (disk full, an unencodable value)
removes the temporary file and leaves the previous ``latest.json`` exactly as it was.

Layout of a matrix directory::

    latest.json, latest.html        the newest run (what a project publishes)
    runs/<run_id>.json, .html       every run, named by its UTC timestamp
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.matrix.model import Matrix
from pytest_mlxstack.process.atomic import atomic_write, write_text_atomic

LATEST_JSON = "latest.json"
LATEST_HTML = "latest.html"
RUNS_DIR = "runs"


class MatrixWriteError(MlxStackError, OSError):
    """Writing failed; the message is one sentence and nothing half-written was left behind."""


@dataclass(frozen=True)
class WrittenMatrix:
    json_path: Path
    latest_json: Path
    html_path: Path | None = None
    latest_html: Path | None = None


def atomic_copy(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` atomically (the copy is written beside ``path`` first)."""

    def copy(handle: IO[str]) -> None:
        with source.open(encoding="utf-8") as src:
            shutil.copyfileobj(src, handle)

    atomic_write(path, copy)


def write_matrix_file(matrix: Matrix, path: Path) -> None:
    """Stream ``matrix``, redacted, as JSON to ``path`` atomically."""
    data = matrix.redacted().to_json()

    def dump(handle: IO[str]) -> None:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")

    atomic_write(path, dump)


def write_matrix(matrix: Matrix, directory: Path, *, html: str | None = None) -> WrittenMatrix:
    """Write the run's timestamped files, then replace ``latest.html`` and ``latest.json``.

    ``latest.json`` is replaced last, only after every other file was written completely.
    """
    run_id = matrix.runs[-1].run_id
    runs = directory / RUNS_DIR
    json_path = _unused_path(runs, run_id, ".json")
    latest_json = directory / LATEST_JSON
    html_path = latest_html = None
    try:
        write_matrix_file(matrix, json_path)
        if html is not None:
            html_path = json_path.with_suffix(".html")
            latest_html = directory / LATEST_HTML
            write_text_atomic(html_path, html)
        if html_path is not None and latest_html is not None:
            atomic_copy(html_path, latest_html)
        atomic_copy(json_path, latest_json)  # last: latest.json is what baselines read
    except (OSError, ValueError, TypeError) as exc:
        # Leave the directory as it was: no run file without the latest.json that names it.
        for written in (json_path, html_path):
            if written is not None:
                with contextlib.suppress(OSError):
                    written.unlink()
        raise MatrixWriteError(
            f"could not write the matrix to {directory} ({exc}); check that the directory is "
            f"writable and has free space"
        ) from exc
    return WrittenMatrix(json_path, latest_json, html_path, latest_html)


def _unused_path(directory: Path, stem: str, suffix: str) -> Path:
    candidate = directory / f"{stem}{suffix}"
    number = 2
    while candidate.exists():
        candidate = directory / f"{stem}-{number}{suffix}"
        number += 1
    return candidate
