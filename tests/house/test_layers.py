"""The package's layers, checked on every import statement (including the lazy ones inside
functions): a module may import its own layer or a lower one, never a higher one, and only the
pytest layer may import pytest. Lowest first; the top-level ``__init__`` is the public facade."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_mlxstack

PACKAGE = Path(pytest_mlxstack.__file__).resolve().parent
LAYERS: tuple[tuple[str, ...], ...] = (
    ("process", "errors", "settings", "settings_values", "text"),
    ("catalog", "matrix", "probe_prompts", "fixture_models"),
    ("probes", "stack"),
    ("run",),
    ("cli", "mainjob", "__main__"),
    ("wiring", "suites", "plugin"),
)
PYTEST_LAYER = len(LAYERS) - 1
PYTEST_MODULES = ("pytest", "_pytest", "xdist", "pluggy")


def layer_of(module: str) -> int | None:
    """The layer of ``pytest_mlxstack.<area>...``; ``None`` for the facade and outsiders."""
    parts = module.split(".")
    if parts[0] != "pytest_mlxstack" or len(parts) == 1:
        return None
    for number, areas in enumerate(LAYERS):
        if parts[1] in areas:
            return number
    raise AssertionError(f"{module} belongs to no layer; add its area to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line (relative imports are taken
    from ``package``, by default the one ``path`` lies in)."""
    found: list[tuple[int, str]] = []
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer() -> None:
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downwards_only(path: Path) -> None:
    here = layer_of(module_name(path))
    if here is None:
        return
    wrong = []
    for line, target in imports_of(path):
        if target.split(".")[0] in PYTEST_MODULES and here != PYTEST_LAYER:
            wrong.append(f"line {line}: library code imports {target}")
            continue
        try:
            there = layer_of(target)
        except AssertionError:
            continue  # ``from pytest_mlxstack.x import name``: the name, not a module
        if there is not None and there > here:
            wrong.append(f"line {line}: imports {target} from a higher layer")
    assert not wrong, f"{path.relative_to(PACKAGE)}: " + "; ".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule itself: a process module importing the wiring is caught."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from pytest_mlxstack.wiring.core import settings\n")
    targets = [target for _, target in imports_of(source, "pytest_mlxstack.process")]
    assert "pytest_mlxstack.wiring.core" in targets
    assert layer_of("pytest_mlxstack.wiring.core") > layer_of("pytest_mlxstack.process.ports")  # type: ignore[operator]
