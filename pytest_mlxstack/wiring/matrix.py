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

from pytest_mlxstack.matrix.collect import (
    CELL_PROPERTY,
    ROW_PROPERTY,
    MatrixCollector,
    PayloadError,
)
from pytest_mlxstack.matrix.diff import MatrixDiff, diff_matrices, no_shared_cells
from pytest_mlxstack.matrix.expectations import Expectations, ExpectationsError, load_expectations
from pytest_mlxstack.matrix.html import render_html
from pytest_mlxstack.matrix.metadata import collect_run_metadata
from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, load_matrix
from pytest_mlxstack.matrix.outcome import Outcome
from pytest_mlxstack.matrix.recorder import MatrixRecorder
from pytest_mlxstack.matrix.store import LATEST_JSON, MatrixWriteError, WrittenMatrix, write_matrix
from pytest_mlxstack.process.paths import default_matrix_dir
from pytest_mlxstack.text.terminal import one_line
from pytest_mlxstack.wiring.core import settings as core_settings

BASELINE_NONE = "none"


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


MATRIX_SESSION = pytest.StashKey[MatrixSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlxstack")
    group.addoption(
        "--mlx-expectations",
        dest="mlx_expectations",
        metavar="PATH",
        default=None,
        help="YAML file of known failures: expected failures xfail, unexpected passes are "
        "flagged (ini: mlx_expectations).",
    )
    parser.addini("mlx_expectations", "YAML file of known matrix failures.", default="")
    group.addoption(
        "--mlx-baseline",
        dest="mlx_baseline",
        metavar="PATH",
        default=None,
        help="Matrix JSON to report regressions against; default: the matrix directory's "
        "previous latest.json; 'none' disables (ini: mlx_baseline).",
    )
    parser.addini("mlx_baseline", "Matrix JSON to compare new matrices with.", default="")
    group.addoption(
        "--mlx-no-html",
        dest="mlx_matrix_html",
        action="store_const",
        const=False,
        default=None,
        help="Write only the matrix JSON, not the HTML report (ini: mlx_matrix_html = false).",
    )
    parser.addini(
        "mlx_matrix_html", "Write the HTML matrix next to the JSON.", type="bool", default=True
    )
    group.addoption(
        "--mlx-machine-profile",
        dest="mlx_machine_profile",
        metavar="NAME",
        default=None,
        help="Label rows with this machine profile (merged matrices are keyed by it); default: "
        "system, architecture, chip and memory (ini: mlx_machine_profile).",
    )
    parser.addini("mlx_machine_profile", "Machine profile label for matrix rows.", default="")


def pytest_configure(config: pytest.Config) -> None:
    path = _path_setting(config, "mlx_expectations")
    try:
        expectations = load_expectations(path) if path is not None else Expectations()
    except ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None
    is_worker = hasattr(config, "workerinput")
    baseline = None if is_worker else _explicit_baseline(config)
    state = MatrixSession(
        expectations=expectations,
        is_worker=is_worker,
        collector=MatrixCollector(expectations),
        baseline=baseline,
    )
    config.stash[MATRIX_SESSION] = state
    if not state.is_worker:
        config.pluginmanager.register(MatrixWriter(config, state), "mlxstack-matrix-writer")


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
    return MatrixRecorder(item.nodeid, item.user_properties, expectations, enforce)


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
        directory = _matrix_dir(self.config)
        baseline = _load_baseline(self.config, directory, state)
        run = collect_run_metadata(
            profile=_text_setting(self.config, "mlx_machine_profile"),
            duration_s=round(time.monotonic() - state.started, 3),
        )
        matrix = state.collector.build(run)
        state.problems.extend(state.collector.warnings)
        state.matrix = matrix
        if baseline is not None:
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
        html = render_html(matrix, baseline=baseline) if _html_enabled(self.config) else None
        try:
            state.written = write_matrix(matrix, directory, html=html)
        except MatrixWriteError as exc:
            state.problems.append(str(exc))
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        state = self.state
        if state.matrix is None and not state.problems:
            return
        write = terminalreporter.write_line
        terminalreporter.write_sep("-", "mlxstack matrix")
        if state.written is not None:
            write(f"matrix JSON: {state.written.json_path} (also {state.written.latest_json})")
            if state.written.html_path is not None:
                write(f"matrix HTML: {state.written.html_path} (also {state.written.latest_html})")
        if state.matrix is not None:
            counts = state.matrix.verdict_counts()
            write("cells: " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
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
    path = _path_setting(config, "mlx_baseline")
    if path is None:
        return None
    if not path.is_file():
        raise pytest.UsageError(
            f"--mlx-baseline / mlx_baseline: {path} is not a matrix file; give a matrix JSON "
            f"such as matrices/latest.json, or '{BASELINE_NONE}' to compare with nothing"
        )
    try:
        return path, load_matrix(path)
    except MatrixFormatError as exc:
        raise pytest.UsageError(f"--mlx-baseline / mlx_baseline: {exc}") from None


def _load_baseline(config: pytest.Config, directory: Path, state: MatrixSession) -> Matrix | None:
    """The explicit baseline, else the matrix directory's previous ``latest.json``."""
    setting = _text_setting(config, "mlx_baseline")
    if setting is not None and setting.lower() == BASELINE_NONE:
        return None
    if state.baseline is not None:
        state.baseline_path, baseline = state.baseline
        return baseline
    path = directory / LATEST_JSON
    if not path.is_file():
        return None
    try:
        baseline = load_matrix(path)
    except MatrixFormatError as exc:
        state.problems.append(f"baseline not used: {exc}")
        return None
    state.baseline_path = path
    return baseline


def _matrix_dir(config: pytest.Config) -> Path:
    """Core's resolved ``--mlx-matrix-dir`` / ``mlx_matrix_dir`` / ``$MLXSTACK_MATRIX_DIR``."""
    try:
        return core_settings(config).matrix_dir
    except KeyError:  # the core wiring was disabled (-p no:...): resolve it the same way here
        return _path_setting(config, "mlx_matrix_dir") or default_matrix_dir()


def _html_enabled(config: pytest.Config) -> bool:
    option = config.getoption("mlx_matrix_html")
    return bool(config.getini("mlx_matrix_html")) if option is None else bool(option)


def _text_setting(config: pytest.Config, name: str) -> str | None:
    """The command-line value, else the ini value; ``None`` when neither is set or known."""
    for getter in (config.getoption, config.getini):
        try:
            value = getter(name)
        except ValueError:
            continue
        if value not in (None, "") and str(value).strip():
            return str(value).strip()
    return None


def _path_setting(config: pytest.Config, name: str) -> Path | None:
    """A path option: relative to the invocation directory on the command line, to the ini
    file's directory in the ini file. ``none`` means unset."""
    try:
        option = config.getoption(name)
    except ValueError:
        option = None
    if option not in (None, ""):
        text = str(option)
        base = config.invocation_params.dir
    else:
        try:
            ini = config.getini(name)
        except ValueError:
            return None
        if ini in (None, ""):
            return None
        text = str(ini)
        base = config.inipath.parent if config.inipath else config.rootpath
    if text.strip().lower() == BASELINE_NONE:
        return None
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else base / path
