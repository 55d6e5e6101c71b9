"""``mlxstack up`` then ``pytest --mlx-endpoint``: what ``up`` prints, and what ``mlxstack env``
exports, is exactly what the endpoint options need, so the two compose: the printed command
(and, separately, the exports alone) run the smoke suite against the stack, which is still
running afterwards, and the master key shows nowhere but in ``env``'s exports."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.wiring.skips import (
    skip_no_litellm,
    skip_no_mlx_backend,
    skip_no_openai,
    skip_no_vllm,
)

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_mlx_backend, skip_no_openai]

MLXSTACK = str(Path(sys.executable).parent / "mlxstack")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mlxhome"
    path.mkdir()
    yield path
    subprocess.run([MLXSTACK, "down", "--home", str(path)], capture_output=True, timeout=120)


def mlxstack(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLXSTACK, *args, "--home", str(home)], capture_output=True, text=True, timeout=300
    )


def run_pytest(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_printed_command_and_the_exports_reach_the_stack(home: Path, tmp_path: Path) -> None:
    up = mlxstack("up", "--detach", home=home)
    assert up.returncode == 0, up.stderr
    key_line = re.search(r'^\s+export MLXSTACK_API_KEY="\$\(cat (\S+)\)"$', up.stdout, re.M)
    assert key_line is not None, up.stdout
    key = Path(key_line.group(1)).read_text().strip()
    assert key not in up.stdout + up.stderr
    commands = [line.strip() for line in up.stdout.splitlines() if "--mlx-endpoint=" in line]
    assert len(commands) == 2, up.stdout  # the user's own tests; the built-in suites
    suites = shlex.split(commands[1])
    assert suites[0] == "pytest"
    assert "--mlx-suites=smoke,harness" in suites
    assert "--mlx-models=tiny-chat:bf16" in suites

    # The printed command, with the key from the printed export, runs the suites against it.
    printed = [*suites[1:], "--mlx-suites=smoke", "-k", "inference"]
    matrices = tmp_path / "printed" / "matrices"
    env = {"MLXSTACK_API_KEY": key, "MLXSTACK_HOME": str(tmp_path / "pytest-home")}
    done = run_pytest([*printed, f"--mlx-matrix-dir={matrices}"], tmp_path / "printed", env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
    assert key not in done.stdout + done.stderr
    (row,) = load_matrix(matrices / "latest.json").rows
    assert (row.model, row.quant, row.server) == ("tiny-chat", "bf16", "vllm-mlx")
    assert key not in (matrices / "latest.json").read_text()

    # mlxstack env: its exports alone point pytest at the same stack.
    exported = mlxstack("env", home=home)
    assert exported.returncode == 0, exported.stderr
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", exported.stdout, flags=re.M))
    assert exports["MLXSTACK_API_KEY"] == key  # env prints the key: that is what it is for
    assert exports["MLXSTACK_ENDPOINT"] == exports["OPENAI_BASE_URL"]
    assert exports["MLXSTACK_ENDPOINT_MODEL"] == "fast"
    assert exports["MLXSTACK_SERVER_LABEL"] == "vllm-mlx"  # LiteLLM's answers hide it
    assert "# built-in suites: pytest --mlx-suites=smoke,harness --mlx-models=tiny-chat:bf16" in (
        exported.stdout
    )
    via_env = {name: shlex.split(value)[0] for name, value in exports.items()}
    matrices = tmp_path / "exported" / "matrices"
    argv = ["--mlx-suites=smoke", "--mlx-models=tiny-chat:bf16", "-k", "inference"]
    argv.append(f"--mlx-matrix-dir={matrices}")
    again = run_pytest(argv, tmp_path / "exported", {**env, **via_env})
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "1 passed" in again.stdout
    (row,) = load_matrix(matrices / "latest.json").rows
    assert (row.model, row.server) == ("tiny-chat", "vllm-mlx")

    # The stack is still up: pytest never stops a server it did not start.
    status = mlxstack("status", home=home)
    running = [line.split() for line in status.stdout.splitlines()[1:] if line.strip()]
    assert sorted((row[0], row[3]) for row in running) == [("fast", "ok"), ("litellm", "ok")]
