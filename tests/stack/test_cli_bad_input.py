"""``mlxstack up/status/logs/down`` with bad input: one sentence naming the option, exit 2.

These run the real ``mlxstack`` executable; every case is refused before anything starts, so
they need neither vllm-mlx nor LiteLLM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MLXSTACK = str(Path(sys.executable).parent / "mlxstack")
# Without CAP_DAC_OVERRIDE root is refused by file modes like any user (tests may run as root).
DROP_ROOT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLXSTACK, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_one_sentence(result: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """Exit 2, nothing on stdout, one ``mlxstack: ...`` line on stderr holding ``phrases``."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("mlxstack: "), line
    assert line.endswith("."), line
    for phrase in phrases:
        assert phrase in line, (phrase, line)
    return line


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-dir"
    path.write_text("x\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["up", "status", "down", "logs"])
def test_home_that_is_a_file_is_one_sentence(command: str, a_file: Path) -> None:
    extra = ["tiny-chat"] if command == "logs" else []
    result = run(command, *extra, "--home", str(a_file))
    assert_one_sentence(result, "--home: ", f"{a_file} is a file, not a directory", "point it at")


def test_home_inside_a_file_is_one_sentence(a_file: Path) -> None:
    result = run("up", "--home", str(a_file / "sub"))
    assert_one_sentence(result, "--home: ", f"{a_file} is a file", "point it at a directory")


def test_home_from_the_environment_names_the_variable(a_file: Path) -> None:
    result = run("status", env={"MLXSTACK_HOME": str(a_file)})
    assert_one_sentence(result, "$MLXSTACK_HOME: ", "is a file")


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="root writes anywhere, and setpriv is missing to drop that",
)
@pytest.mark.parametrize("sub", ["", "sub"])
def test_read_only_home_is_one_sentence_and_starts_nothing(tmp_path: Path, sub: str) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    home = read_only / sub if sub else read_only
    prefix = DROP_ROOT_OVERRIDE if os.geteuid() == 0 else []
    result = subprocess.run(
        [*prefix, MLXSTACK, "up", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    what = "cannot be created" if sub else "is not writable"
    assert_one_sentence(result, "--home: ", f"{home} {what} (Permission denied)", "you can write")
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "value", "problem"),
    [
        ("up", "-1", "'-1' is negative"),
        ("up", "nan", "'nan' is not a finite number"),
        ("up", "inf", "'inf' is not a finite number"),
        ("up", "ten", "'ten' is not a finite number"),
        ("down", "-5", "'-5' is negative"),
        ("down", "nan", "'nan' is not a finite number"),
    ],
)
def test_bad_grace_period_is_one_sentence(
    command: str, value: str, problem: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    result = run(command, "--home", str(home), f"--grace-period={value}")
    assert_one_sentence(result, "--grace-period: ", problem, "0 or more, such as 10")
    assert not home.exists()  # refused before anything was created or started


@pytest.mark.parametrize(
    ("value", "problem"),
    [("99999", "99999 is out of range"), ("80", "80 is out of range"), ("http", "'http' is not")],
)
def test_bad_port_names_the_option_not_a_stack_file_field(
    value: str, problem: str, tmp_path: Path
) -> None:
    result = run("up", "--home", str(tmp_path / "home"), "--port", value)
    line = assert_one_sentence(result, "--port: ", problem, "leave --port out for a free port")
    assert "field" not in line
    assert "Stack" not in line
