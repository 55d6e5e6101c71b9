"""The matrix file's data model: run metadata, one row per model and quantization, one cell per
capability and route.

Pydantic models so that reading a matrix validates it (a hand-edited or truncated file ends in
one sentence naming the field), and so that the published JSON Schema is generated from the
same definitions that write the files (``matrix.schema``). Bump ``SCHEMA_VERSION`` whenever the
shape changes; readers refuse versions they do not know instead of guessing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.matrix.capabilities import capability_rank
from pytest_mlxstack.matrix.verdicts import Attribution, Route, Verdict
from pytest_mlxstack.process.textfiles import FileReadError, read_text_file
from pytest_mlxstack.text.redact import sanitize
from pytest_mlxstack.text.terminal import one_line

SCHEMA_VERSION: Literal[4] = 4
# Older versions this one reads: version 1 lacks an expectation's ``attribution``; version 3
# adds the attribution ``model_or_parser``; version 4 keys rows by server too. Rows of versions
# 1 to 3 were all served by vllm-mlx (the only server those versions started), so they read
# as version 4 rows with ``server: vllm-mlx``.
UPGRADABLE_VERSIONS = (1, 2, 3)
LEGACY_SERVER = "vllm-mlx"
MATRIX_KEYS = ("schema_version", "runs", "rows")
# A matrix of thousands of cells with evidence is a few MB; this bounds what a wrong path reads.
MAX_MATRIX_BYTES = 256 * 2**20

ExpectationStatus = Literal["known_failure", "unexpected_pass", "as_expected", "mismatch"]


class MatrixFormatError(MlxStackError, ValueError):
    """A matrix file that cannot be read; the message is one sentence naming file and field.

    Field names and row keys come from the file, which may hold anything (JSON escapes such as
    ``\\u001b``): the sentence is made plain text on one line before anyone prints it.
    """

    def __init__(self, problem: str, fix: str = "", *, where: str = "", detail: str = "") -> None:
        super().__init__(one_line(problem), one_line(fix), where=one_line(where), detail=detail)


class _Strict(BaseModel):
    # Written files always hold every field, so the published schema requires them all.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class RunMetadata(_Strict):
    """Where and with what a run happened: the provenance a reader needs to trust a row."""

    run_id: str = Field(description="Unique id of the run, e.g. 20250101T120000Z-1a2b3c.")
    created_at: str = Field(description="UTC time the run finished, ISO 8601 with a Z suffix.")
    profile: str = Field(description="Machine profile rows are keyed by when matrices merge.")
    platform: str
    system: str
    machine: str = Field(description="CPU architecture, e.g. arm64 or x86_64.")
    chip: str
    memory_bytes: int | None = None
    python: str
    versions: dict[str, str | None] = Field(
        default_factory=dict,
        description="Installed versions of vllm-mlx, mlx, mlx-lm, litellm, openai, the plugin.",
    )
    duration_s: float | None = None
    provenance: dict[str, str] = Field(
        default_factory=dict,
        description="Fields other plugins added (pytest_mlxstack_provenance): a CI job URL, a "
        "commit.",
    )


class Expectation(_Strict):
    """What the expectations file said about a cell, and how the run compared."""

    verdict: Verdict
    attribution: Attribution | None = Field(
        default=None, description="Whose fault the expected failure is; null: any attribution."
    )
    reason: str = ""
    link: str | None = None
    status: ExpectationStatus


class EvidenceRecord(BaseModel):
    """The probe's evidence, redacted; extra keys are kept so that probes can add detail."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)

    request: dict[str, Any] = Field(default_factory=dict)
    response: dict[str, Any] = Field(default_factory=dict)
    duration_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    notes: list[str] = Field(default_factory=list)


class Cell(_Strict):
    """One capability through one route for one row."""

    capability: str
    route: Route
    verdict: Verdict
    reason: str = ""
    attribution: Attribution | None = None
    evidence: EvidenceRecord = Field(default_factory=EvidenceRecord)
    test_id: str | None = Field(default=None, description="The pytest node id that recorded it.")
    run_id: str | None = Field(default=None, description="The run (see runs) that produced it.")
    expectation: Expectation | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.capability, self.route.value)


PERFORMANCE_FIELDS = ("ttft_s", "decode_tokens_per_s", "prompt_tokens_per_s")


class Row(_Strict):
    """One model at one quantization on one machine profile.

    The performance figures (``PERFORMANCE_FIELDS``) come from one streamed request per model
    during the run; they are optional in the schema, so matrices written before read as before.
    """

    model: str
    quant: str
    server: str = Field(
        description="The server kind that served the row (vllm-mlx, mlx-lm, llama.cpp, or the "
        "name an endpoint was detected or labelled as); rows are keyed by it."
    )
    profile: str
    server_version: str | None = Field(default=None, description="The server's version.")
    repo: str | None = None
    revision: str | None = None
    startup_s: float | None = Field(default=None, description="Seconds until the server served.")
    memory_mb: float | None = Field(default=None, description="Server resident memory in MB.")
    server_starts: int | None = Field(
        default=None, description="Server starts this row needed (one per model and flags)."
    )
    ttft_s: float | None = Field(
        default=None,
        description="Seconds from a streamed request to its first token, straight to the server "
        "(optional: matrices written before it was measured lack it).",
    )
    decode_tokens_per_s: float | None = Field(
        default=None, description="Completion tokens per second after the first token (optional)."
    )
    prompt_tokens_per_s: float | None = Field(
        default=None,
        description="Prompt tokens per second: prompt tokens over the time to first token "
        "(optional).",
    )
    cells: list[Cell] = Field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.quant, self.server, self.profile)

    def cell(self, capability: str, route: Route | str) -> Cell | None:
        wanted = (capability, Route(route).value)
        return next((c for c in self.cells if c.key == wanted), None)


class MergeConflict(_Strict):
    """Two inputs disagreed about the same cell or row field; ``kept`` won, ``dropped`` lost."""

    row: tuple[str, ...]
    field: str
    kept: str | None
    dropped: str | None
    kept_run: str | None = None
    dropped_run: str | None = None


class Matrix(_Strict):
    """A whole matrix file: one or more runs (several after a merge) and their rows."""

    schema_version: Literal[4] = SCHEMA_VERSION
    runs: list[RunMetadata] = Field(min_length=1)
    rows: list[Row] = Field(default_factory=list)
    conflicts: list[MergeConflict] = Field(
        default_factory=list, description="What a merge resolved, for the reader to see."
    )

    def sorted(self) -> Matrix:
        """A copy with rows and cells in canonical order, so equal matrices serialize equally."""
        rows = [
            row.model_copy(update={"cells": sorted(row.cells, key=cell_sort_key)})
            for row in sorted(self.rows, key=lambda r: r.key)
        ]
        return self.model_copy(update={"rows": rows})

    def iter_cells(self) -> list[tuple[Row, Cell]]:
        return [(row, cell) for row in self.rows for cell in row.cells]

    def verdict_counts(self) -> dict[str, int]:
        counts = Counter(cell.verdict.value for _, cell in self.iter_cells())
        return {verdict.value: counts.get(verdict.value, 0) for verdict in Verdict}

    def unexpected_passes(self) -> list[tuple[Row, Cell]]:
        return [
            (row, cell)
            for row, cell in self.iter_cells()
            if cell.expectation is not None and cell.expectation.status == "unexpected_pass"
        ]

    def capabilities(self) -> list[tuple[str, str]]:
        """Every (capability, route) column present, in display order."""
        keys = {cell.key for _, cell in self.iter_cells()}
        return sorted(keys, key=lambda key: (*capability_rank(key[0]), key[1]))

    def to_json(self) -> dict[str, Any]:
        return self.sorted().model_dump(mode="json")

    def redacted(self) -> Matrix:
        """A copy with every secret-shaped string redacted and non-finite numbers as null:
        what gets written and rendered, whatever file the matrix came from."""
        return Matrix.model_validate(sanitize(self.to_json()))

    @classmethod
    def from_json(cls, data: Any, *, source: str = "matrix") -> Matrix:
        if not isinstance(data, dict):
            raise MatrixFormatError(
                f"{source}: the file must hold a JSON object with 'schema_version', 'runs' and "
                f"'rows'; regenerate it with pytest or 'mlxstack matrix merge'"
            )
        if not any(key in data for key in MATRIX_KEYS):
            raise MatrixFormatError(
                f"{source}: is JSON but not a matrix (it has none of 'schema_version', 'runs' "
                f"and 'rows'); pass a matrix JSON written by pytest-mlxstack (under "
                f"matrices/) or by 'mlxstack matrix merge'"
            )
        version = data.get("schema_version")
        if version in UPGRADABLE_VERSIONS:
            data = {**data, "schema_version": SCHEMA_VERSION, "rows": _legacy_rows(data)}
        elif version != SCHEMA_VERSION:
            hint = (
                "upgrade pytest-mlxstack to read it"
                if isinstance(version, int) and version > SCHEMA_VERSION
                else "regenerate it with this version of pytest-mlxstack"
            )
            raise MatrixFormatError(
                f"{source}: schema_version is {version!r} but this pytest-mlxstack reads "
                f"version {SCHEMA_VERSION}; {hint}"
            )
        try:
            matrix = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise MatrixFormatError(
                f"{source}: field {where}: {first['msg']}; fix the file or regenerate it"
            ) from None
        _check_unique(matrix, source)
        return matrix


def _legacy_rows(data: dict[str, Any]) -> Any:
    """Rows of versions 1 to 3 with the server they were all served by (conflicts of a
    version 3 merge name a row by (model, quant, profile): read as they are)."""
    rows = data.get("rows")
    if not isinstance(rows, list):
        return rows
    return [
        {**row, "server": row.get("server", LEGACY_SERVER)} if isinstance(row, dict) else row
        for row in rows
    ]


def _check_unique(matrix: Matrix, source: str) -> None:
    """One row per (model, quant, server, profile), one cell per (capability, route)."""
    rows: set[tuple[str, ...]] = set()
    for index, row in enumerate(matrix.rows):
        if row.key in rows:
            raise MatrixFormatError(
                f"{source}: rows.{index} repeats the row {' / '.join(row.key)}; "
                f"fix the file or combine the rows with 'mlxstack matrix merge'"
            )
        rows.add(row.key)
        cells: set[tuple[str, str]] = set()
        for number, cell in enumerate(row.cells):
            if cell.key in cells:
                raise MatrixFormatError(
                    f"{source}: rows.{index}.cells.{number} repeats {cell.capability} "
                    f"({cell.route.value}) of {row.model}; remove one of them"
                )
            cells.add(cell.key)


def cell_sort_key(cell: Cell) -> tuple[int, str, str]:
    return (*capability_rank(cell.capability), cell.route.value)


def load_matrix(path: str | Path) -> Matrix:
    """Read and validate a matrix file; every problem is a ``MatrixFormatError`` sentence."""
    path = Path(path)
    try:
        text = read_text_file(path, max_bytes=MAX_MATRIX_BYTES)
    except FileReadError as exc:
        fix = {
            "does not exist": "check the path",
            "is a directory, not a file": f"pass a matrix JSON file such as {path}/latest.json",
        }.get(exc.problem, "pass a matrix JSON file")
        problem = "no such matrix file" if exc.problem == "does not exist" else exc.problem
        raise MatrixFormatError(f"{path}: {problem}; {fix}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MatrixFormatError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}), "
            f"in {_quoted_line(text, exc.lineno, exc.colno)}; the file may be truncated, "
            f"regenerate it"
        ) from None
    except RecursionError:
        raise MatrixFormatError(
            f"{path}: nests JSON arrays or objects too deeply to be a matrix; pass a matrix "
            "JSON written by pytest-mlxstack"
        ) from None
    return Matrix.from_json(data, source=str(path))


def _quoted_line(text: str, lineno: int, colno: int, width: int = 60) -> str:
    """The line an error points at, cut to ``width`` characters around the column, quoted
    (control characters removed: the file may hold anything)."""
    lines = text.splitlines() or [""]
    line = lines[min(lineno, len(lines)) - 1]
    start = max(0, min(colno - 1 - width // 2, len(line) - width))
    shown = line[start : start + width]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(line) else ""
    return f"'{prefix}{one_line(shown)}{suffix}'"
