"""Pytest wiring for the built-in smoke, integration and harness suites.

``--mlx-suites [NAMES]`` (ini ``mlx_suites``) adds the suite modules to the collection, the
way ``--mlx-catalog`` adds the tier-1 suite: without test paths only the built-in suites run,
so it works in a repository with no tests, and every xdist worker adds them from the same
options. The catalog (``--mlx-suite-catalog``, default: the fixture catalog) and the model
selection (``--mlx-models``) are read at configure time, so a typo stops the run at once with
one sentence. Select tiers with ``-m smoke`` / ``-m integration`` / ``-m harness``.

When the run moves on to a built-in tier (its first test starts), the controller prints one
progress line, such as ``mlxstack: tier 2 (smoke): 4 models``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_mlxstack.catalog import Catalog, CatalogError, load_catalog
from pytest_mlxstack.matrix.verdicts import Route
from pytest_mlxstack.process.cache import ModelCache
from pytest_mlxstack.run.burst import PlannedProbe, ProbeBurst
from pytest_mlxstack.run.endpoint import (
    ENDPOINT_SUITES,
    endpoint_suite,
    endpoint_target,
    endpoint_targets,
)
from pytest_mlxstack.run.selection import (
    ALL,
    SelectionError,
    Shard,
    SuiteTarget,
    parse_shard,
    parse_suites,
    select_targets,
    shard_targets,
    split_model_args,
)
from pytest_mlxstack.run.session import SuiteStack, start_suite_stack
from pytest_mlxstack.settings import SETTINGS
from pytest_mlxstack.stack import ServerPool
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.kinds import DEFAULT_KIND, KIND_NAMES, KINDS, LLAMA_CPP
from pytest_mlxstack.wiring.catalog import CATALOG_RUN
from pytest_mlxstack.wiring.collection import SUITE_DIR, include_suites, tier_of
from pytest_mlxstack.wiring.core import new_service_manager, report_progress
from pytest_mlxstack.wiring.matrix import adopt_expectations, set_run_server
from pytest_mlxstack.wiring.options import (
    add_settings,
    given_bare,
    is_worker,
    read_setting,
    resolved,
)
from pytest_mlxstack.wiring.stack import configured_endpoint, configured_endpoints, reporting_pull

FIXTURE_EXPECTATIONS = SUITE_DIR / "fixture_expectations.yaml"
NOT_CONFIGURED = "run with --mlx-suites to run the built-in suites"
TIER_NUMBERS = {"catalog": 1, "smoke": 2, "integration": 3, "harness": 4}


@dataclass(frozen=True)
class SuiteRun:
    """What ``--mlx-suites`` asked for: which suites, on which catalog, for which targets."""

    suites: tuple[str, ...]
    catalog: Catalog
    targets: list[SuiteTarget]
    kind: str = DEFAULT_KIND  # the server program every target is served by
    shard: Shard | None = None  # --mlx-shard: this run is one part of a fleet


SUITE_RUN = pytest.StashKey[SuiteRun]()
BURST_PLAN = pytest.StashKey[list[PlannedProbe]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_settings(
        parser,
        "mlx_suites",
        "mlx_suite_catalog",
        "mlx_models",
        "mlx_shard",
        "mlx_token_budget",
        "mlx_server_kind",
        "mlx_probe_concurrency",
    )


def _register_capabilities(config: pytest.Config) -> None:
    """What plugins add through ``pytest_mlxstack_capabilities``; the same pair given again
    (another session in the same process) is a no-op, a clash one usage error."""
    contributed = [
        pair
        for pairs in config.hook.pytest_mlxstack_capabilities(config=config)
        for pair in pairs or []
    ]
    if not contributed:
        return
    from pytest_mlxstack.matrix.capabilities import DECLARED
    from pytest_mlxstack.probes.binding import BOUND
    from pytest_mlxstack.probes.registry import register_capability

    for spec, probe in contributed:
        if DECLARED.get(spec.name) == spec and BOUND.get(spec.name) is probe:
            continue
        try:
            register_capability(spec, probe)
        except ValueError as exc:
            raise pytest.UsageError(f"pytest_mlxstack_capabilities: {exc}") from None


def _set_token_budget(config: pytest.Config) -> None:
    """Scale the probes' budgets in this process (each xdist worker configures its own)."""
    scale = read_setting(config, "mlx_token_budget")
    try:
        from pytest_mlxstack.probes import budget
    except ImportError:  # no harness extra: the suites skip themselves
        return
    budget.set_scale(scale)


@pytest.hookimpl(trylast=True)  # after --mlx-catalog has put its own suite in the arguments
def pytest_configure(config: pytest.Config) -> None:
    _register_capabilities(config)
    chosen = resolved(config, "mlx_suites")
    text = chosen.value or (ALL if given_bare(config, "mlx_suites") else None)
    models = resolved(config, "mlx_models")
    if not text:
        for name in ("mlx_models", "mlx_shard"):
            if resolved(config, name).source == "option":
                raise pytest.UsageError(
                    f"{SETTINGS[name].option} selects models for the built-in suites; add "
                    "--mlx-suites (or set mlx_suites in the ini file)"
                )
        return
    _set_token_budget(config)
    suites_setting, models_setting = SETTINGS["mlx_suites"], SETTINGS["mlx_models"]
    endpoint = configured_endpoint(config)
    try:
        suites = parse_suites(text, where=suites_setting.label(chosen.source))
        catalog = _suite_catalog(config)
        requested = split_model_args(models.value or [])
        where = models_setting.label(models.source)
        endpoints = configured_endpoints(config)
        if endpoints:
            suites = _endpoint_suites(suites, text)
            pairs = [(named.endpoint, named.catalog_model) for named in endpoints]
            targets = endpoint_targets(catalog, pairs, requested, where=where)
        elif endpoint is not None:
            suites = _endpoint_suites(suites, text)
            targets = [endpoint_target(catalog, endpoint, requested, where=where)]
        else:
            targets = select_targets(catalog, requested, where=where)
        shard = _shard(config)
        if shard is not None:
            targets = shard_targets(targets, shard, where=_shard_where(config))
    except (SelectionError, CatalogError) as exc:
        raise pytest.UsageError(str(exc)) from None
    kind = endpoint.server if endpoint is not None else _server_kind(config)
    config.stash[SUITE_RUN] = SuiteRun(suites, catalog, targets, kind, shard)
    if read_setting(config, "mlx_suite_catalog") is None:
        adopt_expectations(
            config, FIXTURE_EXPECTATIONS, "the shipped fixture catalog's negative controls"
        )
    set_run_server(config, kind, KINDS[kind].version() if kind in KINDS and not endpoint else None)
    include_suites(config, *suites)
    if not is_worker(config):  # the controller: xdist workers have no terminal
        config.pluginmanager.register(TierProgress(config), "mlxstack-tier-progress")


class TierProgress:
    """Says on the terminal which built-in tier the run has reached, once per tier.

    ``pytest_runtest_logstart`` runs on the controller for every test, also those xdist
    workers run, so the line comes from the one process with a terminal.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.announced: set[str] = set()
        self.reported = False  # a test report came since our last line (a letter may follow)

    def pytest_runtest_logreport(self) -> None:
        self.reported = True

    def pytest_runtest_logstart(self, location: tuple[str, int | None, str]) -> None:
        tier = self._tier(location[0])  # the node id lacks the path of a file outside rootdir
        if tier is None or tier in self.announced:
            return
        self.announced.add(tier)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.reported and reporter is not None and not reporter.currentfspath:
            # Under xdist the status letters are written without a file path first, so the
            # reporter does not know a line is open; this makes ensure_newline() end it.
            reporter.currentfspath = -2
        self.reported = False
        report_progress(self.config, f"tier {TIER_NUMBERS[tier]} ({tier}): {self._size(tier)}")

    def _tier(self, relpath: str) -> str | None:
        try:
            return tier_of((self.config.rootpath / relpath).resolve())
        except OSError:
            return None

    def _size(self, tier: str) -> str:
        if tier == "catalog":
            catalog_run = self.config.stash.get(CATALOG_RUN, None)
            count = len(list(catalog_run.catalog)) if catalog_run is not None else 0
            return f"{count} catalog entr{'y' if count == 1 else 'ies'}"
        count = len(self.config.stash[SUITE_RUN].targets)
        return f"{count} model{'' if count == 1 else 's'}"


def _endpoint_suites(suites: tuple[str, ...], text: str) -> tuple[str, ...]:
    """Against an endpoint only the suites that need no stack of ours run."""
    if "integration" in suites and "integration" in text:
        raise pytest.UsageError(
            "--mlx-suites: the integration suite needs a stack the plugin starts, not an "
            f"--mlx-endpoint; choose {' or '.join(ENDPOINT_SUITES)}"
        )
    return tuple(name for name in suites if name in ENDPOINT_SUITES)


def pytest_mlxstack_provenance(config: pytest.Config) -> dict[str, str] | None:
    """The server the built-in suites' rows were served by (and its version when known)."""
    run = config.stash.get(SUITE_RUN, None)
    if run is None:
        return None
    found = {"server": run.kind}
    if run.shard is not None:
        found["shard"] = str(run.shard)
    endpoint = configured_endpoint(config)
    several = [named.endpoint for named in configured_endpoints(config)]
    if several:  # --mlx-endpoints: every row names its own server
        found["server"] = ", ".join(each.server for each in several)
        found["endpoint"] = ", ".join(each.base_url for each in several)
    elif endpoint is not None:
        found["endpoint"] = endpoint.base_url
    elif run.kind in KINDS:
        found["server_version"] = KINDS[run.kind].version() or "not installed"
    return found


def _shard(config: pytest.Config) -> Shard | None:
    """``--mlx-shard K/N`` (ini ``mlx_shard``, ``MLXSTACK_SHARD``), checked; None: all."""
    text: str | None = read_setting(config, "mlx_shard")
    return parse_shard(text, where=_shard_where(config)) if text else None


def _shard_where(config: pytest.Config) -> str:
    return SETTINGS["mlx_shard"].label(resolved(config, "mlx_shard").source)


def _server_kind(config: pytest.Config) -> str:
    """The ``--mlx-server-kind`` value, which must name a kind that can run here."""
    chosen = resolved(config, "mlx_server_kind")
    kind = str(chosen.value)
    where = SETTINGS["mlx_server_kind"].label(chosen.source)
    if kind not in KINDS:
        raise pytest.UsageError(
            f"{where}: '{kind}' is not a server kind pytest-mlxstack can start; use one of "
            f"{', '.join(KIND_NAMES)}"
        )
    if kind == LLAMA_CPP.name and not LLAMA_CPP.installed():
        raise pytest.UsageError(f"{where}: {LLAMA_CPP.missing_reason()}")
    return kind


def _suite_catalog(config: pytest.Config) -> Catalog:
    path: Path | None = read_setting(config, "mlx_suite_catalog")
    if path is not None:
        return load_catalog(path)
    try:
        from pytest_mlxstack.fixture_models import fixture_catalog_path
    except ImportError:
        raise pytest.UsageError(
            "the built-in suites default to the fixture catalog, which this installation "
            "lacks; pass --mlx-suite-catalog PATH"
        ) from None
    return load_catalog(fixture_catalog_path())


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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan the probes of the generic capability tests pytest selected, in test order (what
    a burst may run ahead: ``run/burst.py``)."""
    if SUITE_RUN not in session.config.stash:
        return
    plan = []
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        route = getattr(getattr(item, "module", None), "ROUTE", None)
        target = params.get("mlx_suite_target")
        capability = params.get("capability")
        if isinstance(route, Route) and isinstance(target, SuiteTarget) and capability:
            plan.append(PlannedProbe(str(capability), target, route))
    session.config.stash[BURST_PLAN] = plan


@pytest.fixture(scope="session")
def mlx_probe_burst(
    pytestconfig: pytest.Config, mlx_suite_stack: SuiteStack
) -> Iterator[ProbeBurst]:
    """The selected generic probes, ``--mlx-probe-concurrency`` at a time, ahead of their
    tests (one by one under xdist)."""
    width = 1 if is_worker(pytestconfig) else read_setting(pytestconfig, "mlx_probe_concurrency")
    plan: list[PlannedProbe] = pytestconfig.stash.get(BURST_PLAN, [])
    burst = ProbeBurst(mlx_suite_stack, plan, width)
    try:
        yield burst
    finally:
        burst.close()


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
    endpoint = configured_endpoint(pytestconfig)
    if endpoint is not None:  # nothing to start, nothing to stop
        external = endpoint_suite(mlx_suite_run.targets, endpoint)
        try:
            yield external
        finally:
            external.close()
        return
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
                kind=mlx_suite_run.kind,
            )
        except StackError as exc:  # the catalog or LiteLLM: a model that fails is only "down"
            pytest.fail(f"the suite stack did not start: {exc}", pytrace=False)
        try:
            yield suite
        finally:
            suite.close()
