"""The README's reference must list exactly what the plugin registers: options, ini keys,
markers, fixtures, environment variables and CLI commands. A new option without docs, or docs
for an option that was renamed, fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PACKAGE = ROOT / "pytest_mlxstack"


def reference_section() -> str:
    return README.split("## Reference", 1)[1].split("\n## ", 1)[0]


def documented(pattern: str) -> set[str]:
    return set(re.findall(pattern, reference_section()))


@pytest.fixture(scope="module")
def pytest_help(tmp_path_factory: pytest.TempPathFactory) -> str:
    # An empty directory, so that this repository's own ini file does not add anything.
    where = tmp_path_factory.mktemp("help")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=where,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_every_option_is_documented_and_every_documented_option_exists(pytest_help: str) -> None:
    registered = set(re.findall(r"(--mlx-[a-z-]+)", pytest_help))
    assert registered == documented(r"`(--mlx-[a-z-]+)`")


def test_every_ini_key_is_documented_and_exists(pytest_help: str) -> None:
    ini_block = pytest_help.split("[pytest] configuration options", 1)[1]
    registered = set(re.findall(r"^  (mlx_[a-z_]+) \(", ini_block, flags=re.MULTILINE))
    table = reference_section().split("### Options and ini keys", 1)[1].split("###", 1)[0]
    ini_column = set(re.findall(r"^\| `--mlx-[a-z-]+` \| `(mlx_[a-z_]+)` \|", table, re.MULTILINE))
    assert registered == ini_column


def test_every_marker_is_documented(pytester: pytest.Pytester) -> None:
    lines = pytester.runpytest("--markers").stdout.lines
    ours = {"catalog_validation", "smoke", "integration", "harness"}
    registered = {m for m in ours if any(f"@pytest.mark.{m}:" in line for line in lines)}
    assert registered == ours
    table = reference_section().split("### Markers", 1)[1].split("###", 1)[0]
    assert set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)) == ours


def test_every_fixture_is_documented(pytester: pytest.Pytester) -> None:
    output = pytester.runpytest("--fixtures", "-p", "no:cacheprovider").stdout.str()
    ours: set[str] = set()
    for block in re.split(r"^-+ fixtures defined from ", output, flags=re.MULTILINE)[1:]:
        if block.startswith("pytest_mlxstack"):
            ours |= set(re.findall(r"^(\w+)(?: \[\w+ scope\])? -- ", block, flags=re.MULTILINE))
    table = reference_section().split("### Fixtures", 1)[1].split("###", 1)[0]
    assert ours == set(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE))


def test_every_environment_variable_the_package_reads_is_documented() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    read = set(re.findall(r"\"(MLXSTACK_(?:HOME|CACHE_DIR|MATRIX_DIR|GRACE_PERIOD))\"", source))
    read |= set(re.findall(r"\"(HF_(?:TOKEN|ENDPOINT|HUB_OFFLINE))\"", source))
    assert read
    assert read <= documented(r"`((?:MLXSTACK|HF)_[A-Z_]+)`")


def test_every_cli_command_is_documented() -> None:
    from pytest_mlxstack.cli import build_parser

    parser = build_parser()
    commands = next(
        action.choices
        for action in parser._actions  # argparse offers no public accessor for subcommands
        if isinstance(action.choices, dict)
    )
    table = reference_section().split("### CLI", 1)[1]
    assert set(commands) == set(re.findall(r"^\| `mlxstack (\w+)` \|", table, flags=re.MULTILINE))
