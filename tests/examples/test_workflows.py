"""The GitHub workflows of this repository and of examples/downstream: valid for GitHub (the
vendored workflow schema of check-jsonschema), and every pytest or mlxstack command they run
uses options this checkout really has, so a renamed option cannot silently break a nightly."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

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


def commands_in(workflow: Path) -> list[Command]:
    """Every pytest/mlxstack command line of the workflow, with its job's env (folded YAML
    scalars are already one line; backslash continuations are joined)."""
    document = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    found = []
    for job_name, job in document["jobs"].items():
        env = {key: str(value) for key, value in (job.get("env") or {}).items()}
        for step in job.get("steps", []):
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                line = line.strip()
                for tool, pattern in (("pytest", PYTEST_CALL), ("mlxstack", MLXSTACK_CALL)):
                    if match := pattern.match(line):
                        rest = line[match.end() :].split("|")[0].split("&&")[0].split(">>")[0]
                        argv = tuple(shlex.split(rest, comments=True))
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
