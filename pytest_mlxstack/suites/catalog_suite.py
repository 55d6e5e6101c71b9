"""The built-in tier-1 catalog suite that ``pytest --mlx-catalog [PATH]`` runs.

One test per entry and check (``test_benchmarks[qwen3-8b]``) or per source and check
(``test_hub[qwen3-8b-int4]``). Structural checks run offline; the Hub checks of every selected
source are asked concurrently once per run (under xdist one worker asks and the others read its
answers, see ``hub.inspect_shared``) and each ``test_hub`` item then reports its own source. No
model is downloaded.
"""

from __future__ import annotations

from typing import cast

import pytest

from pytest_mlxstack.catalog import CatalogEntry
from pytest_mlxstack.catalog.checks import ENTRY_CHECKS, source_checks
from pytest_mlxstack.catalog.hub import (
    HubClient,
    HubSettings,
    RepoReport,
    Verdict,
    hub_problems,
    hub_unverified,
    inspect_shared,
)
from pytest_mlxstack.text.terminal import one_line
from pytest_mlxstack.wiring.catalog import CATALOG_RUN, MARKER, CatalogRun, shared_hub_dir

pytestmark = getattr(pytest.mark, MARKER)  # catalog_validation, registered by the wiring

_NOT_CONFIGURED = "run with --mlx-catalog [PATH] to validate a catalog"
_SOURCE_TESTS = {"test_disk_size": "disk_size", "test_local_files": "local_files"}
_ENTRY_TESTS = {"test_int4_source": "int4_source", "test_benchmarks": "benchmarks"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize each check over the catalog's entries or sources, with readable ids."""
    run = metafunc.config.stash.get(CATALOG_RUN, None)
    name = metafunc.function.__name__
    if run is None:
        params = [pytest.param(None, marks=pytest.mark.skip(reason=_NOT_CONFIGURED), id="none")]
        metafunc.parametrize("case", params)
        return
    if name in _ENTRY_TESTS:
        cases = [pytest.param((entry, None), id=entry.id) for entry in run.catalog]
    else:
        check = _SOURCE_TESTS.get(name)
        cases = [
            pytest.param((entry, quant), id=f"{entry.id}-{quant}")
            for entry in run.catalog
            for quant in entry.sources
            if check is None or check in source_checks(entry, quant)
        ]
    if not cases:  # e.g. no local source: say so instead of pytest's "empty parameter set"
        reason = f"no source in this catalog needs {name}"
        cases = [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="none")]
    metafunc.parametrize("case", cases)


Case = tuple[CatalogEntry, str]


def _fail(entry: CatalogEntry, problems: list[str]) -> None:
    """Fail with one line per problem; a problem may quote the Hub's answer or a chat
    template from it, so each is printed as plain text."""
    if problems:
        where = f" ({entry.file})" if entry.file else ""
        lines = "\n".join(f"  - {one_line(p)}" for p in problems)
        pytest.fail(f"catalog entry '{entry.id}'{where}:\n{lines}", pytrace=False)


def test_int4_source(case: tuple[CatalogEntry, None]) -> None:
    entry, _ = case
    _fail(entry, ENTRY_CHECKS["int4_source"](entry))


def test_benchmarks(case: tuple[CatalogEntry, None]) -> None:
    entry, _ = case
    _fail(entry, ENTRY_CHECKS["benchmarks"](entry))


def test_disk_size(case: Case) -> None:
    entry, quant = case
    _fail(entry, source_checks(entry, quant)["disk_size"](entry, quant))


def test_local_files(case: Case) -> None:
    entry, quant = case
    _fail(entry, source_checks(entry, quant)["local_files"](entry, quant))


@pytest.fixture(scope="session")
def hub_reports(request: pytest.FixtureRequest) -> dict[tuple[str, str | None], RepoReport]:
    """Hub reports for the Hub sources of every selected ``test_hub`` item, asked concurrently.

    Under xdist every worker collects every item: the reports are then asked once for the whole
    run and shared through a file in the directory the controller hands its workers.
    """
    settings = HubSettings.from_env()
    if settings.offline:
        return {}
    run: CatalogRun = request.config.stash[CATALOG_RUN]
    targets: list[tuple[str, str | None]] = []
    for item in request.session.items:
        if not isinstance(item, pytest.Function) or item.function is not test_hub:
            continue
        case = cast(Case, item.callspec.params["case"])
        entry, quant = case
        source = entry.sources[quant]
        if source.hf_repo is not None:
            targets.append((source.hf_repo, source.revision))
    client = HubClient(settings, workers=run.hub_workers)
    shared = shared_hub_dir(request.config)
    if shared is None:
        return client.inspect_many(targets)
    return inspect_shared(client, targets, shared)


def test_hub(case: Case, request: pytest.FixtureRequest) -> None:
    entry, quant = case
    source = entry.sources[quant]
    if source.hf_repo is None:
        pytest.skip("local source: the Hub checks do not apply (test_local_files checks it)")
    if HubSettings.from_env().offline:
        pytest.skip("HF_HUB_OFFLINE is set: Hub checks skipped (the structural checks still run)")
    reports: dict[tuple[str, str | None], RepoReport] = request.getfixturevalue("hub_reports")
    report = reports.get((source.hf_repo, source.revision))
    if report is None:  # not prefetched (e.g. collected after the session fixture ran)
        report = HubClient().inspect(source.hf_repo, source.revision)
    if report.verdict is Verdict.SKIPPED:
        pytest.skip(f"Hub checks skipped: {one_line(report.detail)}")
    _fail(entry, hub_problems(entry, quant, report))
    unverified = hub_unverified(entry, quant, report)
    if unverified:  # a check the Hub did not let us make is said, never passed silently
        pytest.skip(one_line("; ".join(unverified)))
