"""Fixtures for the catalog tests: catalog folders and a local Hub."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_helpers import dump

from pytest_mlxstack.catalog.hubserver import LocalHub

WriteCatalog = Callable[[dict[str, Any]], Path]


@pytest.fixture
def write_catalog(tmp_path: Path) -> WriteCatalog:
    """Write ``{file name: entry dict | raw text}`` into a fresh catalog folder."""
    counter = iter(range(1000))

    def write(files: dict[str, Any]) -> Path:
        folder = tmp_path / f"catalog{next(counter)}"
        folder.mkdir()
        for name, content in files.items():
            text = content if isinstance(content, str) else dump(content)
            (folder / name).write_text(text, encoding="utf-8")
        return folder

    return write


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    """A local Hub that leaves the environment alone (tests pass its URL explicitly)."""
    with LocalHub() as running:
        yield running
