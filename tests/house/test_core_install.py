"""The core package alone (``pip install pytest-mlxstack``, no extras) in a fresh virtual
environment: every module the plugin imports is a declared dependency, ``--mlx-catalog`` runs
offline, and the built-in suites say what they miss instead of crashing."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("core-venv")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


def run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLXSTACK_"))}
    env.update(HF_HUB_OFFLINE="1", MLXSTACK_HOME=str(cwd / "home"))
    return subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_core_package_validates_the_shipped_catalog_offline(
    core_python: Path, tmp_path: Path
) -> None:
    done = run(core_python, tmp_path, "--mlx-catalog", "-q")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
    assert "Error" not in done.stdout


def test_the_core_package_lacks_no_import(core_python: Path) -> None:
    """The plugin and the library names load with the core dependencies only; what needs an
    extra (openai, vllm-mlx, LiteLLM) is imported where it is used."""
    code = (
        "import pytest_mlxstack as p, pytest_mlxstack.plugin\n"
        "for name in p.__all__:\n"
        "    try:\n"
        "        getattr(p, name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        print(name, exc)\n"
    )
    done = subprocess.run([str(core_python), "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "run_probe pytest_mlxstack.run_probe needs openai, which is not installed; install it "
        "with: pip install 'pytest-mlxstack[harness]'"
    ]
