"""Pytest wiring for the built-in smoke, integration and harness suites.

``--mlx-suites [NAMES]`` (ini ``mlx_suites``) adds the suite modules to the collection, the
way ``--mlx-catalog`` adds the tier-1 suite: without test paths only the built-in suites run,
so it works in a repository with no tests, and every xdist worker adds them from the same
options. The catalog (``--mlx-suite-catalog``, default: the fixture catalog) and the model
selection (``--mlx-models``) are read at configure time, so a typo stops the run at once with
one sentence. Select tiers with ``-m smoke`` / ``-m integration`` / ``-m harness``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_mlxstack.cache import ModelCache
from pytest_mlxstack.catalog import Catalog, CatalogError, load_catalog
from pytest_mlxstack.matrix.verdicts import Route
from pytest_mlxstack.stack import ServerPool
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.suites.selection import (
    ALL,
    SelectionError,
    SuiteTarget,
    parse_suites,
    select_targets,
    split_model_args,
)
from pytest_mlxstack.suites.session import SuiteStack, start_suite_stack
from pytest_mlxstack.wiring.core import new_service_manager
from pytest_mlxstack.wiring.stack import reporting_pull

SUITE_DIR = Path(__file__).resolve().parent.parent / "suites"
NOT_CONFIGURED = "run with --mlx-suites to run the built-in suites"


@dataclass(frozen=True)
class SuiteRun:
    """What ``--mlx-suites`` asked for: which suites, on which catalog, for which targets."""

    suites: tuple[str, ...]
    catalog: Catalog
    targets: list[SuiteTarget]


SUITE_RUN = pytest.StashKey[SuiteRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlxstack")
    group.addoption(
        "--mlx-suites",
        dest="mlx_suites",
        nargs="?",
        const=ALL,
        default=None,
        metavar="NAMES",
        help="Run the built-in suites: all (the default) or a comma-separated list of smoke, "
        "integration, harness; write --mlx-suites=NAMES when test paths follow "
        "(ini: mlx_suites).",
    )
    parser.addini("mlx_suites", "Built-in suites to run on every run (all, or a list).", default="")
    group.addoption(
        "--mlx-suite-catalog",
        dest="mlx_suite_catalog",
        metavar="PATH",
        default=None,
        help="Catalog (folder or YAML file) the built-in suites run on; default: the fixture "
        "catalog shipped with the plugin (ini: mlx_suite_catalog).",
    )
    parser.addini("mlx_suite_catalog", "Catalog the built-in suites run on.", default="")
    group.addoption(
        "--mlx-models",
        dest="mlx_models",
        action="append",
        default=None,
        metavar="IDS",
        help="Catalog ids (ID or ID:QUANT) the built-in suites run on, comma-separated or "
        "repeated; default: every entry (ini: mlx_models).",
    )
    parser.addini(
        "mlx_models", "Catalog ids (ID or ID:QUANT) for the built-in suites.", type="args"
    )


@pytest.hookimpl(trylast=True)  # after --mlx-catalog has put its own suite in the arguments
def pytest_configure(config: pytest.Config) -> None:
    option = config.getoption("mlx_suites")
    text = option if option is not None else str(config.getini("mlx_suites")).strip()
    models_option = config.getoption("mlx_models")
    if not text:
        if models_option:
            raise pytest.UsageError(
                "--mlx-models selects models for the built-in suites; add --mlx-suites "
                "(or set mlx_suites in the ini file)"
            )
        return
    try:
        suites = parse_suites(text, where="--mlx-suites" if option is not None else "mlx_suites")
        catalog = _suite_catalog(config)
        requested = split_model_args(models_option or config.getini("mlx_models") or [])
        where = "--mlx-models" if models_option else "mlx_models"
        targets = select_targets(catalog, requested, where=where)
    except (SelectionError, CatalogError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SUITE_RUN] = SuiteRun(suites, catalog, targets)
    paths = [str(SUITE_DIR / f"{name}.py") for name in suites]
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        # No test paths given: run only built-in suites (testpaths and the cwd are ignored).
        config.args[:] = [arg for arg in config.args if _is_builtin_suite(arg)]
    config.args.extend(path for path in paths if path not in config.args)


def _suite_catalog(config: pytest.Config) -> Catalog:
    option = config.getoption("mlx_suite_catalog")
    ini = str(config.getini("mlx_suite_catalog")).strip()
    if option:
        return load_catalog(config.invocation_params.dir / Path(option).expanduser())
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return load_catalog(base / Path(ini).expanduser())
    try:
        from pytest_mlxstack.fixture_models import fixture_catalog_path
    except ImportError:
        raise pytest.UsageError(
            "the built-in suites default to the fixture catalog, which this installation "
            "lacks; pass --mlx-suite-catalog PATH"
        ) from None
    return load_catalog(fixture_catalog_path())


def _is_builtin_suite(arg: str) -> bool:
    path = Path(arg.split("::", 1)[0])
    return path.suffix == ".py" and path.resolve().parent == SUITE_DIR


def parametrize_targets(metafunc: pytest.Metafunc, route: Route) -> None:
    """Parametrize ``mlx_suite_target`` over the selected targets, with ids such as
    ``tiny-chat-bf16-direct``; a suite module collected without ``--mlx-suites`` skips."""
    if "mlx_suite_target" not in metafunc.fixturenames:
        return
    run = metafunc.config.stash.get(SUITE_RUN, None)
    if run is None:
        param = pytest.param(None, marks=pytest.mark.skip(reason=NOT_CONFIGURED), id="none")
        metafunc.parametrize("mlx_suite_target", [param])
        return
    metafunc.parametrize(
        "mlx_suite_target",
        [pytest.param(t, id=f"{t.label}-{route.value}") for t in run.targets],
    )


@pytest.fixture(scope="session")
def mlx_suite_run(pytestconfig: pytest.Config) -> SuiteRun:
    """The suites, catalog and targets ``--mlx-suites`` selected."""
    run = pytestconfig.stash.get(SUITE_RUN, None)
    if run is None:
        pytest.skip(NOT_CONFIGURED)
    return run


@pytest.fixture(scope="session")
def mlx_suite_stack(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    mlx_suite_run: SuiteRun,
    mlx_server_pool: ServerPool,
    model_cache: ModelCache,
) -> Iterator[SuiteStack]:
    """Every selected target as a tier (vllm-mlx from the session pool) behind one LiteLLM,
    started once per session and shared by the smoke, integration and harness suites. A
    target whose server does not start is "down": its tests record ``server_down`` cells and
    fail, and the others run."""
    pytest.importorskip("openai", reason="the built-in suites need the harness extra (openai)")
    with new_service_manager(pytestconfig) as manager:
        try:
            suite = start_suite_stack(
                mlx_suite_run.targets,
                mlx_suite_run.catalog.path,
                manager=manager,
                pool=mlx_server_pool,
                directory=tmp_path_factory.mktemp("mlx-suite-stack"),
                pull=reporting_pull(pytestconfig, model_cache),
                twin="integration" in mlx_suite_run.suites,
            )
        except StackError as exc:  # the catalog or LiteLLM: a model that fails is only "down"
            pytest.fail(f"the suite stack did not start: {exc}", pytrace=False)
        try:
            yield suite
        finally:
            suite.close()
