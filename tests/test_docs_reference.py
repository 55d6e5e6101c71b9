"""The README's reference must list exactly what the plugin registers: options, ini keys,
markers (those ``pytest --markers`` lists only with the plugin), fixtures, the environment
variables the package's source names (any ``MLXSTACK_``/``HF_``/``TRANSFORMERS_``/``LITELLM_``
string, less an internal allow-list) and every ``mlxstack`` command, sub-commands and options
included. A new option without docs, or docs for an option that was renamed, fails here."""

from __future__ import annotations

import argparse
import ast
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


def markers_listed(directory: Path, *args: str) -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(re.findall(r"^@pytest\.mark\.(\w+)", listed, flags=re.MULTILINE))


def test_every_marker_is_documented(tmp_path: Path) -> None:
    """Ours are the markers ``pytest --markers`` lists with the plugin and not without it."""
    ours = markers_listed(tmp_path) - markers_listed(tmp_path, "-p", "no:mlxstack")
    assert {"smoke", "catalog_validation"} <= ours  # the comparison itself works
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


ENV_NAME = re.compile(r"(?:MLXSTACK_|HF_|TRANSFORMERS_|LITELLM_)[A-Z_]+")
# Names in the package's source that are not settings a user gives, and why.
INTERNAL_ENV = {
    "MLXSTACK_SERVICE_ID": "set on every process the plugin starts, to recognise it later",
    "LITELLM_MASTER_KEY": "the stack's random key, handed to its LiteLLM (never the user's)",
    "LITELLM_LOCAL_MODEL_COST_MAP": "set for LiteLLM so that it does not fetch its cost map",
    # The local_hub fixture turns off every way huggingface_hub finds a token (documented
    # there); these are huggingface_hub's, not settings of the plugin.
    "HF_OIDC_RESOURCE": "cleared by local_hub",
    "HF_OIDC_ID_TOKEN": "cleared by local_hub",
    "HF_TOKEN_PATH": "pointed at a missing file by local_hub",
}


def env_names_in(package: Path) -> dict[str, set[str]]:
    """Every string literal of the package that is exactly an environment variable name of
    ours or of the libraries we drive, with the files it is in."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exported = {  # __all__ lists Python names (LITELLM_PROXY_MODULES), not variables
            id(element)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            for element in ast.walk(node.value)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and ENV_NAME.fullmatch(node.value)
                and id(node) not in exported
            ):
                found.setdefault(node.value, set()).add(str(path.relative_to(package)))
    return found


def documented_env() -> set[str]:
    table = reference_section().split("### Environment variables", 1)[1].split("###", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))


def test_every_environment_variable_the_package_names_is_documented() -> None:
    found = env_names_in(PACKAGE)
    assert set(INTERNAL_ENV) <= set(found), "an allow-list entry the package no longer names"
    undocumented = {name: sorted(files) for name, files in found.items()}
    for name in documented_env() | set(INTERNAL_ENV):
        undocumented.pop(name, None)
    assert undocumented == {}
    assert documented_env() <= set(found), "documented but named nowhere in the package"


def cli_commands() -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Every ``mlxstack`` command, sub-commands included, with its options (each option's
    spellings, ``-h`` left out); a command that only groups others has no entry."""
    from pytest_mlxstack.cli import build_parser

    commands: dict[tuple[str, ...], list[tuple[str, ...]]] = {}

    def walk(parser: argparse.ArgumentParser, chain: tuple[str, ...]) -> None:
        options = [
            tuple(action.option_strings)
            for action in parser._actions  # argparse has no public accessor for these
            if action.option_strings and not isinstance(action, argparse._HelpAction)
        ]
        groups = [a.choices for a in parser._actions if isinstance(a.choices, dict)]
        for choices in groups:
            for name, subparser in choices.items():
                walk(subparser, (*chain, name))
        if not groups or options:
            commands[chain] = options

    walk(build_parser(), ("mlxstack",))
    return commands


def documented_cli() -> dict[tuple[str, ...], str]:
    """The CLI table's rows by command (``mlxstack matrix diff``), and the text before it
    under ``("mlxstack",)``."""
    section = reference_section().split("### CLI", 1)[1].split("###", 1)[0]
    rows = {
        tuple(command.split()): line
        for line in section.splitlines()
        for command in re.findall(r"^\| `(mlxstack [\w ]+)` \|", line)
    }
    return {("mlxstack",): section.split("\n|", 1)[0], **rows}


def test_every_cli_command_and_option_is_documented() -> None:
    commands, documented = cli_commands(), documented_cli()
    assert ("mlxstack", "matrix", "diff") in commands  # the walk reaches sub-sub-commands
    assert set(commands) == set(documented)
    missing = [
        f"{' '.join(chain)} {'/'.join(spellings)}"
        for chain, options in commands.items()
        for spellings in options
        if not any(
            re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", documented[chain])
            for spelling in spellings
        )
    ]
    assert missing == []


def test_every_library_name_is_documented() -> None:
    import pytest_mlxstack

    table = reference_section().split("### Library API", 1)[1].split("###", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE))
    library = {
        name
        for name, module in pytest_mlxstack._EXPORTS.items()
        if module != "pytest_mlxstack.wiring.skips"
    }
    assert listed == library
