"""Hooks other plugins (or a ``conftest.py``) implement to extend pytest-mlxstack.

Registered through ``pytest_addhooks``, as pytest-xdist's ``newhooks.py`` does; implement them
by name in a plugin or conftest, with the arguments you need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_mlxstack.matrix.model import Matrix
    from pytest_mlxstack.matrix.store import WrittenMatrix


@pytest.hookspec()
def pytest_mlxstack_provenance(config: pytest.Config) -> dict[str, str] | None:
    """Extra provenance for this run's matrix (a CI job URL, a git commit, a device id).

    Called once on the controller before the matrix is written; the returned fields land in
    ``run.provenance`` of the matrix JSON, redacted like every other text. Several plugins
    may contribute; when two give the same key, the first answer pluggy collects wins.
    """


@pytest.hookspec()
def pytest_mlxstack_capabilities(config: pytest.Config) -> list[Any] | None:
    """Extra capability probes for the built-in suites: a list of
    ``pytest_mlxstack.probes.registry.Capability`` declarations (name, probe function, what
    it requires of a catalog entry). Each becomes a smoke test per model and a matrix column.
    """


@pytest.hookspec()
def pytest_mlxstack_matrix_written(
    config: pytest.Config, matrix: Matrix, written: WrittenMatrix
) -> None:
    """A matrix has been written (``written.json_path``, ``written.html_path``): upload it,
    post a summary, add another output format. Called on the controller only."""
