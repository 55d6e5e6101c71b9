"""The GitHub workflows of this repository and of examples/downstream: valid for GitHub (the
vendored workflow schema of check-jsonschema), and every pytest or mlxstack command they run
uses options this checkout really has, so a renamed option cannot silently break a nightly."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "downstream"
WORKFLOWS = sorted(
    [
        *(ROOT / ".github" / "workflows").glob("*.yml"),
        *(EXAMPLE / ".github" / "workflows").glob("*.yml"),
    ]
)
MLXSTACK = str(Path(sys.executable).parent / "mlxstack")
PYTEST_CALL = re.compile(r"^(?:\S*python\S*\s+-m\s+pytest|\S*pytest)(?:\s|$)")
MLXSTACK_CALL = re.compile(r"^(?:\S*/)?mlxstack(?:\s|$)")


@dataclass(frozen=True)
class Command:
    """One pytest or mlxstack command of a workflow's ``run:`` script."""

    workflow: Path
    job: str
    tool: str  # "pytest" or "mlxstack"
    argv: tuple[str, ...]  # the arguments after the tool
    env: dict[str, str]

    @property
    def options(self) -> list[str]:
        return [arg.split("=", 1)[0] for arg in self.argv if arg.startswith("--")]

    def __str__(self) -> str:
        return (
            f"{self.workflow.relative_to(ROOT)} job {self.job}: {self.tool} {shlex.join(self.argv)}"
        )


MATRIX_VALUE = re.compile(r"\$\{\{\s*matrix\.([A-Za-z0-9_-]+)\s*\}\}")


def matrix_combinations(job: dict[str, Any]) -> list[dict[str, str]]:
    """Every combination of a job's ``strategy.matrix`` lists (one empty one without)."""
    axes = {
        key: [str(value) for value in values]
        for key, values in ((job.get("strategy") or {}).get("matrix") or {}).items()
        if isinstance(values, list)
    }
    combinations: list[dict[str, str]] = [{}]
    for key, values in axes.items():
        combinations = [{**combo, key: value} for combo in combinations for value in values]
    return combinations


def with_matrix(text: str, combination: dict[str, str]) -> str:
    """``text`` with ``${{ matrix.KEY }}`` replaced as GitHub does for that job."""
    return MATRIX_VALUE.sub(lambda found: combination[found.group(1)], text)


def commands_in(workflow: Path) -> list[Command]:
    """Every pytest/mlxstack command line of the workflow, with its job's env (folded YAML
    scalars are already one line; backslash continuations are joined); a job's
    ``PYTEST_ADDOPTS`` counts as one more pytest command. A job with a ``strategy.matrix``
    gives its commands once per combination, ``${{ matrix.KEY }}`` filled in."""
    document = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    found = []
    for job_name, job in document["jobs"].items():
        for combination in matrix_combinations(job):
            raw_env = (job.get("env") or {}).items()
            env = {key: with_matrix(str(value), combination) for key, value in raw_env}
            if addopts := env.get("PYTEST_ADDOPTS"):
                argv = tuple(shlex.split(addopts))
                found.append(Command(workflow, job_name, "pytest", argv, env))
            for step in job.get("steps", []):
                script = with_matrix(step.get("run", "").replace("\\\n", " "), combination)
                for line in script.splitlines():
                    line = line.strip()
                    for tool, pattern in (("pytest", PYTEST_CALL), ("mlxstack", MLXSTACK_CALL)):
                        if match := pattern.match(line):
                            rest = line[match.end() :].split("|")[0].split("&&")[0]
                            argv = tuple(shlex.split(rest.split(">>")[0], comments=True))
                            found.append(Command(workflow, job_name, tool, argv, env))
    return found


ALL_COMMANDS = [command for workflow in WORKFLOWS for command in commands_in(workflow)]


@cache
def pytest_help(cwd: Path) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@cache
def mlxstack_help(chain: tuple[str, ...]) -> str:
    run = subprocess.run([MLXSTACK, *chain, "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"mlxstack {' '.join(chain)}: {run.stderr.strip()}"
    return run.stdout


def mlxstack_subcommand(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The subcommand words (``matrix diff``): taken while the help says another follows."""
    chain: tuple[str, ...] = ()
    for word in argv:
        usage = mlxstack_help(chain).split("\n\n", 1)[0]
        if not usage.rstrip().endswith("COMMAND ..."):
            break
        chain += (word,)
    return chain


def unknown_options(command: Command) -> list[str]:
    if command.tool == "pytest":
        cwd = EXAMPLE if command.workflow.is_relative_to(EXAMPLE) else ROOT
        help_text = pytest_help(cwd)
    else:
        help_text = mlxstack_help(mlxstack_subcommand(command.argv))
    return [
        option
        for option in command.options
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text)
    ]


def check_workflows(*paths: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its vendored (offline) GitHub workflow schema."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
        + [str(path) for path in paths],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_workflow_is_a_valid_github_workflow():
    assert len(WORKFLOWS) >= 4, WORKFLOWS  # ci, nightly, pre-release, the example's nightly
    run = check_workflows(*WORKFLOWS)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    run = check_workflows(broken)
    assert run.returncode == 1, run.stdout + run.stderr


def test_the_workflows_run_the_tiers_and_the_diff():
    runs = {(c.workflow.relative_to(ROOT).as_posix(), c.tool, c.argv[:2]) for c in ALL_COMMANDS}
    assert (".github/workflows/nightly.yml", "mlxstack", ("matrix", "diff")) in runs
    assert (
        "examples/downstream/.github/workflows/nightly.yml",
        "mlxstack",
        ("matrix", "diff"),
    ) in runs
    suites = [a for c in ALL_COMMANDS if c.tool == "pytest" for a in c.argv if "mlx-suites" in a]
    assert "--mlx-suites=smoke" in suites
    assert "--mlx-suites=integration,harness" in suites


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_workflow_commands_use_options_that_exist(command: Command):
    assert unknown_options(command) == []


def test_a_made_up_option_is_caught(tmp_path: Path):
    workflow = tmp_path / "made-up.yml"
    workflow.write_text(
        "jobs:\n  j:\n    steps:\n      - run: |\n"
        "          python -m pytest --mlx-suites=smoke --mlx-modles=qwen3-0.6b\n"
        "          mlxstack matrix diff a.json b.json --markdwon out.md\n"
    )
    pytest_cmd, mlxstack_cmd = commands_in(workflow)
    assert unknown_options(pytest_cmd) == ["--mlx-modles"]
    assert unknown_options(mlxstack_cmd) == ["--markdwon"]


@pytest.mark.parametrize(
    "command",
    [c for c in ALL_COMMANDS if c.tool == "pytest" and not c.workflow.is_relative_to(EXAMPLE)],
    ids=str,
)
def test_workflow_pytest_commands_are_accepted(command: Command, tmp_path: Path):
    """Option values too: suite names, catalog paths, model ids and quantizations are checked
    at start-up, so collecting is enough (no model starts, no Hub request)."""
    env = {**os.environ, **command.env, "PYTHONDONTWRITEBYTECODE": "1"}
    env |= {"MATRIX_DIR": str(tmp_path / "matrices"), "MLXSTACK_HOME": str(tmp_path / "home")}
    argv = [
        os.path.expandvars(arg.replace("$MATRIX_DIR", env["MATRIX_DIR"])) for arg in command.argv
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *argv, "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


# -- the nightly jobs: baseline, tests, compare ----------------------------------------------

NIGHTLIES = [ROOT / ".github/workflows/nightly.yml", EXAMPLE / ".github/workflows/nightly.yml"]
MATRIX_WORKFLOWS = [*NIGHTLIES, ROOT / ".github/workflows/pre-release.yml"]
PROFILE = re.compile(r"--mlx-machine-profile=(\S+)")


@dataclass(frozen=True)
class Job:
    workflow: Path
    name: str
    spec: dict[str, Any]

    @property
    def env(self) -> dict[str, str]:
        return {key: str(value) for key, value in (self.spec.get("env") or {}).items()}

    def step(self, name_start: str) -> dict[str, Any]:
        steps = [s for s in self.spec["steps"] if s.get("name", "").startswith(name_start)]
        assert len(steps) == 1, f"{self}: {len(steps)} steps named {name_start!r}..."
        return steps[0]

    def uploads(self) -> dict[str, dict[str, Any]]:
        return {
            s["with"]["name"]: s
            for s in self.spec["steps"]
            if str(s.get("uses", "")).startswith("actions/upload-artifact")
        }

    def __str__(self) -> str:
        return f"{self.workflow.relative_to(ROOT)}:{self.name}"


def jobs_of(*workflows: Path) -> list[Job]:
    return [
        Job(workflow, name, spec)
        for workflow in workflows
        for name, spec in yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"].items()
    ]


NIGHTLY_JOBS = jobs_of(*NIGHTLIES)


@pytest.mark.parametrize("job", jobs_of(*MATRIX_WORKFLOWS), ids=str)
def test_every_matrix_job_pins_its_machine_label(job: Job):
    """The diff matches rows on the machine profile; the default one (CPU model, memory) would
    change with the runner and turn every cell into removed + new."""
    found = PROFILE.findall(job.env.get("PYTEST_ADDOPTS", ""))
    assert found == [f"ci-{job.spec['runs-on']}"], job.env


@pytest.mark.parametrize("job", NIGHTLY_JOBS, ids=str)
def test_a_nightly_compares_whatever_its_tests_did(job: Job):
    label = PROFILE.findall(job.env["PYTEST_ADDOPTS"])[0]
    artifact = f"matrix-{label}"  # a new label starts a new baseline, never a disjoint diff
    tests = next(s for s in job.spec["steps"] if s.get("id") == "tests")
    assert tests.get("continue-on-error") is True, "a failing cell must not fail the job"
    after = job.spec["steps"][job.spec["steps"].index(tests) + 1 :]
    compare = job.step("Compare with the previous nightly")
    for step in (compare, job.uploads()[artifact]):
        assert step in after
        assert step["if"] in ("${{ !cancelled() }}", "always()"), step
    assert f"--name {artifact} --dir previous" in job.step("Previous nightly matrix")["run"]
    assert "--status" not in job.step("Previous nightly matrix")["run"]  # any conclusion
    logs = next(s for s in job.uploads().values() if "logs" in s["with"]["path"])
    assert "steps.tests.outcome == 'failure'" in logs["if"]


def run_step(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A ``run:`` script as the runner runs it (``bash -e``), our mlxstack on the PATH."""
    bin_dir = Path(sys.executable).parent
    if not (cwd / ".venv").exists():
        (cwd / ".venv").symlink_to(bin_dir.parent, target_is_directory=True)
    base = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(cwd)}
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def matrix_file(path: Path, profile: str, verdict: str) -> None:
    from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload, row_payload
    from pytest_mlxstack.matrix.metadata import collect_run_metadata
    from pytest_mlxstack.matrix.store import write_matrix_file
    from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Verdict

    collector = MatrixCollector()
    for capability, outcome in (("inference", "pass"), ("tool_calling", verdict)):
        blame = None if outcome == "pass" else Attribution.PARSER
        probe = ProbeResult(capability, Verdict(outcome), f"{capability} {outcome}", blame)
        collector.add_cell(cell_payload(probe, model="m", quant="int4", route="direct"))
    collector.add_row(row_payload(model="m", quant="int4"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_matrix_file(collector.build(collect_run_metadata(profile=profile)), path)


@pytest.mark.parametrize("job", NIGHTLY_JOBS, ids=str)
def test_the_compare_step_fails_on_a_regression_or_without_a_matrix(job: Job, tmp_path: Path):
    script = job.step("Compare with the previous nightly")["run"]
    label = PROFILE.findall(job.env["PYTEST_ADDOPTS"])[0]
    matrix_dir = job.env.get("MATRIX_DIR", "matrices")
    summary = tmp_path / "summary.md"
    env = {"MATRIX_DIR": matrix_dir, "GITHUB_STEP_SUMMARY": str(summary)}

    def compare() -> tuple[int, str]:
        summary.write_text("")
        done = run_step(script, tmp_path, **env)
        return done.returncode, summary.read_text() + done.stdout + done.stderr

    status, text = compare()  # the tests step died before writing a matrix
    assert (status, "no matrix was written" in text) == (1, True), text

    matrix_file(tmp_path / matrix_dir / "latest.json", label, "pass")
    status, text = compare()  # the first nightly
    assert (status, "No previous nightly matrix" in text) == (0, True), text

    matrix_file(tmp_path / "previous" / "latest.json", label, "pass")
    status, text = compare()
    assert (status, "0 regressions" in text) == (0, True), text

    matrix_file(tmp_path / matrix_dir / "latest.json", label, "fail")  # tool_calling regressed
    status, text = compare()
    assert status != 0, text
    assert "1 regression," in text, text
    assert "| m | int4 | " + label + r" | tool\_calling | direct | pass | fail |" in text, text


FAKE_GH = """#!/usr/bin/env bash
# gh run list -> the run ids of $RUNS; gh run download ID --name N --dir D -> $ARTIFACTS/ID/N
if [ "$1 $2" = "run list" ]; then printf '%s\\n' $RUNS; exit 0; fi
if [ "$1 $2" = "run download" ]; then
  [ -d "$ARTIFACTS/$3/$5" ] || { echo "no artifact matches any of the names" >&2; exit 1; }
  mkdir -p "$7" && cp -R "$ARTIFACTS/$3/$5/." "$7/"; exit 0
fi
exit 2
"""


@pytest.mark.parametrize("job", NIGHTLY_JOBS, ids=str)
def test_the_baseline_is_the_newest_earlier_run_that_uploaded_a_matrix(job: Job, tmp_path: Path):
    """Not the newest successful run: a nightly whose tests failed uploaded its matrix too."""
    script = job.step("Previous nightly matrix")["run"]
    artifact = f"matrix-{PROFILE.findall(job.env['PYTEST_ADDOPTS'])[0]}"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(FAKE_GH)
    (fake / "gh").chmod(0o755)
    artifacts = tmp_path / "artifacts"
    for run_id in ("300", "100", "50"):  # 300 is this run; 200 (cancelled early) uploaded none
        (artifacts / run_id / artifact).mkdir(parents=True)
        (artifacts / run_id / artifact / "latest.json").write_text(run_id)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
        "ARTIFACTS": str(artifacts),
        "GITHUB_RUN_ID": "300",
        "GITHUB_REF_NAME": "main",
    }

    done = run_step(script, work, **env, RUNS="300 200 100 50")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "previous" / "latest.json").read_text() == "100"

    shutil.rmtree(work / "previous")
    done = run_step(script, work, **env, RUNS="300")  # the first nightly
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (work / "previous").exists()
