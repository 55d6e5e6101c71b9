"""``from pytest_mlxstack import ...``: every public name resolves, lazily, and importing the
library's names never imports pytest (a downstream tool can use the library on its own)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import pytest_mlxstack

LIBRARY_NAMES = sorted(
    name
    for name in pytest_mlxstack.__all__
    if name != "__version__" and pytest_mlxstack._EXPORTS[name] != "pytest_mlxstack.wiring.skips"
)


def test_all_lists_exactly_the_exported_names() -> None:
    assert sorted(pytest_mlxstack.__all__) == sorted(["__version__", *pytest_mlxstack._EXPORTS])


@pytest.mark.parametrize("name", pytest_mlxstack.__all__)
def test_every_public_name_resolves_from_the_module_that_defines_it(name: str) -> None:
    if name == "__version__":
        return
    home = importlib.import_module(pytest_mlxstack._EXPORTS[name])
    assert getattr(pytest_mlxstack, name) is getattr(home, name)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'NoSuchThing'"):
        pytest_mlxstack.NoSuchThing  # noqa: B018


def test_importing_the_library_names_never_imports_pytest() -> None:
    code = (
        "import sys\n"
        f"from pytest_mlxstack import {', '.join(LIBRARY_NAMES)}\n"
        "assert 'pytest' not in sys.modules and '_pytest' not in sys.modules, "
        "sorted(m for m in sys.modules if 'pytest' in m)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_every_error_derives_from_the_one_base() -> None:
    base = pytest_mlxstack.MlxStackError
    errors = [name for name in LIBRARY_NAMES if name.endswith("Error")]
    assert len(errors) >= 10
    for name in errors:
        assert issubclass(getattr(pytest_mlxstack, name), base), name
