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

MARKER = "catalog_validation"
SUITE_PATH = Path(__file__).resolve().parent.parent / "suites" / "catalog_suite.py"
_BARE = "\0default"  # what a bare ``--mlx-catalog`` stores


@dataclass(frozen=True)
class CatalogRun:
    """The catalog under validation and how to ask the Hub about it."""

    catalog: Catalog
    hub_workers: int


CATALOG_RUN = pytest.StashKey[CatalogRun]()
# The controller's directory for the Hub answers its xdist workers share, made on first use.
_SHARED_DIR = pytest.StashKey[Path]()
SHARED_DIR_KEY = "mlxstack_catalog_hub_dir"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlxstack")
    group.addoption(
        "--mlx-catalog",
        dest="mlx_catalog",
        nargs="?",
        const=_BARE,
        default=None,
        metavar="PATH",
        help="Validate a model catalog (a folder of YAML files or one file) with the built-in "
        "tier-1 suite; without PATH: the mlx_catalog ini value, else the shipped catalog. "
        "Write --mlx-catalog=PATH when test paths follow (ini: mlx_catalog).",
    )
    parser.addini(
        "mlx_catalog",
        "Catalog to validate on every run (relative to the ini file's folder).",
        default="",
    )
    group.addoption(
        "--mlx-hub-workers",
        dest="mlx_hub_workers",
        metavar="N",
        default=None,
        help="Concurrent Hub requests for the catalog checks, default 32 (ini: mlx_hub_workers).",
    )
    parser.addini("mlx_hub_workers", "Concurrent Hub requests for catalog checks.", default="32")


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
    config.stash[CATALOG_RUN] = CatalogRun(catalog, _hub_workers(config))
    suite = str(SUITE_PATH)
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [suite]  # no paths given: run only the suite (testpaths ignored)
    elif suite not in config.args:
        config.args.append(suite)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: every worker shares one directory for the Hub's answers."""
    config: pytest.Config = node.config
    if CATALOG_RUN not in config.stash:
        return
    if _SHARED_DIR not in config.stash:
        config.stash[_SHARED_DIR] = Path(tempfile.mkdtemp(prefix="mlxstack-catalog-hub-"))
    node.workerinput[SHARED_DIR_KEY] = str(config.stash[_SHARED_DIR])


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller removes the shared directory once its workers are gone."""
    shared = config.stash.get(_SHARED_DIR, None)
    if shared is not None:
        shutil.rmtree(shared, ignore_errors=True)


def shared_hub_dir(config: pytest.Config) -> Path | None:
    """On an xdist worker, the directory where the run's Hub answers are shared; else None."""
    workerinput = getattr(config, "workerinput", None)
    if not isinstance(workerinput, dict) or SHARED_DIR_KEY not in workerinput:
        return None
    return Path(str(workerinput[SHARED_DIR_KEY]))


def _catalog_path(config: pytest.Config) -> Path | None:
    """Which catalog to validate, or None when catalog validation is off."""
    option = config.getoption("mlx_catalog")
    ini = str(config.getini("mlx_catalog")).strip()
    ini_path = (_ini_dir(config) / ini) if ini else None
    if option is None:
        return ini_path
    if option == _BARE or not option.strip():
        return ini_path or default_catalog_path()
    return config.invocation_params.dir / Path(option).expanduser()


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


def _ini_dir(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath is not None else config.rootpath


def _hub_workers(config: pytest.Config) -> int:
    raw = config.getoption("mlx_hub_workers") or config.getini("mlx_hub_workers") or "32"
    try:
        workers = int(str(raw))
    except ValueError:
        workers = 0
    if not 1 <= workers <= 256:
        raise pytest.UsageError(
            f"--mlx-hub-workers/mlx_hub_workers is {raw!r}; give a whole number from 1 to 256."
        )
    return workers


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
