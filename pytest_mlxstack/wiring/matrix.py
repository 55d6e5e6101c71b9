"""Pytest wiring for the matrix: the ``mlx_matrix`` recorder, collection across xdist workers,
writing at session end, the terminal summary. Kept thin: logic lives in ``pytest_mlxstack.matrix``.

Cells travel as plain JSON on ``item.user_properties`` (``mlxstack.cell`` / ``mlxstack.row``),
so under ``pytest -n N`` the controller receives every worker's cells with the test reports.
Only the controller (or a run without xdist) writes, at ``pytest_sessionfinish``, and only when
at least one cell was recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.baseline import previous_matrix, within_selection
from pytest_mlxstack.matrix.collect import (
    CELL_PROPERTY,
    ROW_PROPERTY,
    MatrixCollector,
    PayloadError,
)
from pytest_mlxstack.matrix.diff import MatrixDiff, diff_matrices, no_shared_cells
from pytest_mlxstack.matrix.expectations import Expectations, ExpectationsError, load_expectations
from pytest_mlxstack.matrix.history import recent_history
from pytest_mlxstack.matrix.html import render_html
from pytest_mlxstack.matrix.metadata import collect_run_metadata
from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, load_matrix
from pytest_mlxstack.matrix.outcome import Outcome
from pytest_mlxstack.matrix.readiness import readiness_lines
from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.store import RUNS_DIR, MatrixWriteError, WrittenMatrix, write_matrix
from pytest_mlxstack.settings import NONE
from pytest_mlxstack.text.redact import redact_text
from pytest_mlxstack.text.terminal import one_line
from pytest_mlxstack.wiring.options import add_settings, is_worker, read_setting, resolved


@dataclass
class MatrixSession:
    """Per-session state: what was collected, what was written, what to say at the end."""

    expectations: Expectations
    is_worker: bool
    collector: MatrixCollector
    started: float = field(default_factory=time.monotonic)
    seen: set[tuple[str, int, str]] = field(default_factory=set)
    written: WrittenMatrix | None = None
    matrix: Matrix | None = None
    diff: MatrixDiff | None = None
    baseline: tuple[Path, Matrix] | None = None  # given explicitly, read at configure time
    baseline_path: Path | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_chosen: bool = False  # the suites named the run's server (a stack only guesses)


MATRIX_SESSION = pytest.StashKey[MatrixSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_settings(
        parser, "mlx_expectations", "mlx_baseline", "mlx_matrix_html", "mlx_machine_profile"
    )


def pytest_configure(config: pytest.Config) -> None:
    path = read_setting(config, "mlx_expectations")
    try:
        expectations = load_expectations(path) if path is not None else Expectations()
    except ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    worker = is_worker(config)
    baseline = None if worker else _explicit_baseline(config)
    state = MatrixSession(
        expectations=expectations,
        is_worker=worker,
        collector=MatrixCollector(expectations),
        baseline=baseline,
    )
    config.stash[MATRIX_SESSION] = state
    if not state.is_worker:
        config.pluginmanager.register(MatrixWriter(config, state), "mlxstack-matrix-writer")


def set_run_server(
    config: pytest.Config, kind: str, version: str | None = None, *, fallback: bool = False
) -> None:
    """Rows of this run are served by ``kind``: they name it (and its version), and
    expectations naming another server skip them. A ``fallback`` (the kind of the user's
    ``mlx_stack``) never replaces what the built-in suites chose."""
    state = config.stash.get(MATRIX_SESSION, None)
    if state is None or (fallback and state.server_chosen):
        return
    state.server_chosen = state.server_chosen or not fallback
    state.expectations.server = kind
    state.collector.server, state.collector.server_version = kind, version


def adopt_expectations(config: pytest.Config, path: Path, why: str) -> None:
    """Use the expectations file ``path`` when the user chose none (``--mlx-expectations``,
    its ini key or ``none``), and say so in the summary: the shipped fixture catalog's
    negative controls are known failures, not a broken install."""
    if resolved(config, "mlx_expectations").source != "default":
        return
    state = config.stash[MATRIX_SESSION]
    state.expectations = load_expectations(path)
    state.collector = MatrixCollector(state.expectations)
    state.notes.append(
        f"expectations: {why}: {path} applies by itself (--mlx-expectations=none turns it off)"
    )


def enforce(outcome: Outcome) -> None:
    """Make a cell's outcome the test's: ``fail`` fails it, ``skip`` skips it, a known failure
    xfails it; ``pass`` returns."""
    if outcome.action == "fail":
        pytest.fail(outcome.message, pytrace=False)
    elif outcome.action == "skip":
        pytest.skip(outcome.message)
    elif outcome.action == "xfail":
        pytest.xfail(outcome.message)


@pytest.fixture
def mlx_matrix(request: pytest.FixtureRequest) -> MatrixRecorder:
    """Record capability results of this test into the session's compatibility matrix."""
    item = request.node
    if not isinstance(item, pytest.Item):  # pragma: no cover - function scope guarantees it
        raise TypeError("mlx_matrix is a function-scoped fixture")
    expectations = request.config.stash[MATRIX_SESSION].expectations

    def stack_defaults() -> tuple[str, str, str | None]:
        """The row of the stack's default tier, for cells recorded without ``model=``: its
        model, quantization and server kind."""
        stack = request.getfixturevalue("mlx_stack")
        tier = next(iter(stack.tiers.values()))
        label, kind = tier.model_label, tier.kind
        model, colon, quant = label.partition(":")
        return (model, quant, kind) if colon else (Path(label).name, "local", kind)

    return MatrixRecorder(
        item.nodeid, item.user_properties, expectations, enforce, defaults=stack_defaults
    )


class MatrixWriter:
    """Controller-side plugin: gathers cells from reports, writes the matrix, summarises it."""

    def __init__(self, config: pytest.Config, state: MatrixSession) -> None:
        self.config = config
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take cells off every report; each phase repeats the list, positions dedupe it."""
        for index, (name, value) in enumerate(report.user_properties):
            process = value.get("process") if isinstance(value, dict) else None
            key = (report.nodeid, index, str(process))  # --dist each runs a test per worker
            if name not in (CELL_PROPERTY, ROW_PROPERTY) or key in self.state.seen:
                continue
            self.state.seen.add(key)
            try:
                self.state.collector.add(name, value)
            except PayloadError as exc:
                self.state.problems.append(f"{report.nodeid}: {exc}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        state = self.state
        if state.collector.cell_count == 0:
            return
        directory: Path = read_setting(self.config, "mlx_matrix_dir")
        run = collect_run_metadata(
            profile=read_setting(self.config, "mlx_machine_profile"),
            duration_s=round(time.monotonic() - state.started, 3),
            provenance=self._provenance(),
        )
        matrix = state.collector.build(run)
        state.problems.extend(state.collector.warnings)
        state.matrix = matrix
        baseline = _load_baseline(self.config, directory, state, run.profile, run.run_id)
        if baseline is not None:
            baseline = within_selection(baseline, matrix)
            unrelated = no_shared_cells(
                baseline,
                matrix,
                base_name=f"the baseline {state.baseline_path}",
                new_name="this run's matrix",
            )
            if unrelated is None:
                state.diff = diff_matrices(baseline, matrix)
            else:
                state.problems.append(unrelated)
                baseline = None  # the page would list every cell as new or missing
        html = None
        if read_setting(self.config, "mlx_matrix_html"):
            history, unreadable = recent_history(directory / RUNS_DIR)
            state.problems.extend(unreadable)
            html = render_html(matrix, baseline=baseline, history=history)
        try:
            state.written = write_matrix(matrix, directory, html=html)
        except MatrixWriteError as exc:
            state.problems.append(str(exc))
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
        try:
            self.config.hook.pytest_mlxstack_matrix_written(
                config=self.config, matrix=matrix, written=state.written
            )
        except Exception as exc:  # the matrix is written; a failed upload must not hide it
            state.problems.append(
                f"a pytest_mlxstack_matrix_written hook failed ({type(exc).__name__}: {exc}); "
                "the matrix itself was written"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def _provenance(self) -> dict[str, str]:
        """What plugins add through ``pytest_mlxstack_provenance``: the first value of a key
        wins; keys and values are text, secret-shaped values redacted."""
        fields: dict[str, str] = {}
        for contributed in self.config.hook.pytest_mlxstack_provenance(config=self.config):
            for key, item in (contributed or {}).items():
                fields.setdefault(str(key), redact_text(str(item)))
        return fields

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        state = self.state
        if state.matrix is None and not state.problems:
            return
        write = terminalreporter.write_line
        terminalreporter.write_sep("-", "mlxstack matrix")
        for note in state.notes:
            write(note)
        if state.written is not None:
            write(f"matrix JSON: {state.written.json_path} (also {state.written.latest_json})")
            if state.written.html_path is not None:
                write(f"matrix HTML: {state.written.html_path} (also {state.written.latest_html})")
        if state.matrix is not None:
            counts = state.matrix.verdict_counts()
            write("cells: " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
            for line in readiness_lines(state.matrix):  # names from the matrix: one line each
                write(("  " if line.startswith(" ") else "") + one_line(line))
            if state.diff is not None:
                write(f"against baseline {state.baseline_path}: {state.diff.headline()}")
                for line in state.diff.regression_lines():
                    write(line, red=True)
            for row, cell in state.matrix.unexpected_passes():
                reason = cell.expectation.reason if cell.expectation else ""
                write(
                    f"  UNEXPECTED PASS {one_line(row.model)} [{one_line(row.quant)}] "
                    f"{one_line(cell.capability)} ({cell.route.value}): expected to fail "
                    f"({one_line(reason)}); update the expectations file",
                    yellow=True,
                )
        for problem in state.problems:  # may quote payloads and files: no terminal sequences
            write(f"  {one_line(problem)}", yellow=True)


def _explicit_baseline(config: pytest.Config) -> tuple[Path, Matrix] | None:
    """``--mlx-baseline`` / ``mlx_baseline`` read up front: a bad file stops the run at once."""
    path = read_setting(config, "mlx_baseline")
    if path is None:
        return None
    if not path.is_file():
        raise pytest.UsageError(
            f"--mlx-baseline / mlx_baseline: {path} is not a matrix file; give a matrix JSON "
            f"such as matrices/latest.json, or '{NONE}' to compare with nothing"
        )
    try:
        return path, load_matrix(path)
    except MatrixFormatError as exc:
        raise pytest.UsageError(f"--mlx-baseline / mlx_baseline: {exc}") from None


def _load_baseline(
    config: pytest.Config, directory: Path, state: MatrixSession, profile: str, run_id: str
) -> Matrix | None:
    """The explicit baseline, else the newest earlier matrix in the matrix directory with a
    row of this run's machine profile (``None`` when there is none, or 'none' was asked)."""
    chosen = resolved(config, "mlx_baseline")
    if chosen.value is None and chosen.source != "default":
        return None  # written as 'none'
    if state.baseline is not None:
        state.baseline_path, baseline = state.baseline
        return baseline
    found = previous_matrix(directory, profile, exclude=run_id)
    if found is None:
        return None
    state.baseline_path, baseline = found
    return baseline
