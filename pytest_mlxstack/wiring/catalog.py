"""Pytest wiring for the catalog: ``--mlx-catalog [PATH]``, the ``local_hub`` fixture.

With ``--mlx-catalog`` (or the ``mlx_catalog`` ini key) the catalog is loaded at configure time,
so a broken one stops the run with a one-sentence ``UsageError`` before anything is collected,
and the built-in tier-1 suite (``pytest_mlxstack/suites/catalog_suite.py``) is added to the
collection arguments. Without explicit paths only the suite runs, so it works in a repository
with no test files; under xdist every worker adds it the same way from the same options, and the
controller hands its workers one directory (``workerinput``) where the Hub's answers are shared,
so a run asks about each repository once whatever ``-n`` is.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants as hf_constants

from pytest_mlxstack.catalog import Catalog, CatalogError, default_catalog_path, load_catalog
from pytest_mlxstack.catalog.hubserver import LocalHub
from pytest_mlxstack.wiring.collection import include_suites
from pytest_mlxstack.wiring.options import (
    add_settings,
    given_bare,
    hand_over,
    read_setting,
    run_dir,
)

MARKER = "catalog_validation"


@dataclass(frozen=True)
class CatalogRun:
    """The catalog under validation and how to ask the Hub about it."""

    catalog: Catalog
    hub_workers: int


CATALOG_RUN = pytest.StashKey[CatalogRun]()
# The controller's directory for the Hub answers its xdist workers share, made on first use.
_SHARED_DIR = pytest.StashKey[Path]()
SHARED_DIR_KEY = "catalog_hub_dir"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_settings(parser, "mlx_catalog", "mlx_hub_workers")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the built-in tier-1 catalog checks that --mlx-catalog runs (offline "
        "structural checks and Hub checks, no model download).",
    )
    path = _catalog_path(config)
    if path is None:
        return
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        raise pytest.UsageError(_usage_message(exc, path)) from None
    config.stash[CATALOG_RUN] = CatalogRun(catalog, read_setting(config, "mlx_hub_workers"))
    include_suites(config, "catalog_suite")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: every worker shares one directory for the Hub's answers."""
    config: pytest.Config = node.config
    if CATALOG_RUN not in config.stash:
        return
    if _SHARED_DIR not in config.stash:
        config.stash[_SHARED_DIR] = Path(tempfile.mkdtemp(prefix="mlxstack-catalog-hub-"))
    hand_over(node, SHARED_DIR_KEY, str(config.stash[_SHARED_DIR]))


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller removes the shared directory once its workers are gone."""
    shared = config.stash.get(_SHARED_DIR, None)
    if shared is not None:
        shutil.rmtree(shared, ignore_errors=True)


def shared_hub_dir(config: pytest.Config) -> Path | None:
    """On an xdist worker, the directory where the run's Hub answers are shared; else None."""
    return run_dir(config, SHARED_DIR_KEY)


def _catalog_path(config: pytest.Config) -> Path | None:
    """Which catalog to validate, or None when catalog validation is off. A bare
    ``--mlx-catalog`` means the ini value, else the shipped catalog."""
    path: Path | None = read_setting(config, "mlx_catalog")
    if path is None and given_bare(config, "mlx_catalog"):
        return default_catalog_path()
    return path


def _usage_message(exc: CatalogError, path: Path) -> str:
    """The catalog's sentence, plus a hint when PATH was meant as a test path.

    ``--mlx-catalog`` takes an optional value, so ``pytest --mlx-catalog tests/`` reads
    ``tests/`` as the catalog.
    """
    meant_tests = path.suffix == ".py" or (path.is_dir() and any(path.glob("*.py")))
    if exc.entry_id is not None or not meant_tests:
        return str(exc)
    return (
        f"{str(exc).rstrip('.')}; if {path.name} holds tests, write --mlx-catalog=CATALOG "
        "or put the test paths before --mlx-catalog."
    )


@pytest.fixture
def local_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalHub]:
    """A running local Hugging Face Hub on 127.0.0.1, empty until ``add_repo`` is called.

    ``HF_ENDPOINT`` points at it for the test, ``HF_HUB_OFFLINE`` is cleared, and every way
    ``huggingface_hub`` finds a token is turned off (``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``,
    OIDC, and the token file of ``hf auth login``: ``HF_TOKEN_PATH`` points at a file that does
    not exist), so requests are anonymous and online even on a developer's logged-in machine,
    unless the test sets ``HF_TOKEN``. ``huggingface_hub`` reads ``HF_ENDPOINT`` once at import:
    pass ``endpoint=local_hub.url`` to its functions.
    """
    no_token_file = str(tmp_path_factory.mktemp("local-hub") / "no-token")
    with LocalHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        # For processes the test starts (they read HF_TOKEN_PATH at import) ...
        monkeypatch.setenv("HF_TOKEN_PATH", no_token_file)
        # ... and for this one, where huggingface_hub read it at import already.
        monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", no_token_file)
        yield hub
