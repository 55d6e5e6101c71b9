"""Hub checks against a real local Hub: verdicts, retries, concurrency, and what a user reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from catalog_helpers import PLAIN_TEMPLATE, entry, model_files, publish

from pytest_mlxstack.catalog import CatalogEntry, load_catalog
from pytest_mlxstack.catalog.hub import (
    HubClient,
    HubSettings,
    RepoReport,
    RetryPolicy,
    Verdict,
    hub_problems,
    hub_unverified,
    inspect_shared,
)
from pytest_mlxstack.catalog.hubserver import LocalHub

REPO = "mlx-community/Qwen3-8B-4bit"
FAST = RetryPolicy(base_delay=0.001)


def client(hub: LocalHub, token: str | None = None, **kwargs: Any) -> HubClient:
    retry = kwargs.pop("retry", FAST)
    return HubClient(HubSettings(endpoint=hub.url, token=token), retry=retry, **kwargs)


def problems_for(hub: LocalHub, data: dict[str, Any], token: str | None = None) -> list[str]:
    e = CatalogEntry.model_validate(data)
    source = e.sources["int4"]
    assert source.hf_repo is not None
    report = client(hub, token).inspect(source.hf_repo, source.revision)
    return hub_problems(e, "int4", report)


def test_published_entry_has_no_problems(hub: LocalHub) -> None:
    publish(hub, entry())
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.EXISTS
    assert report.template_file == "tokenizer_config.json"
    assert problems_for(hub, entry()) == []


@pytest.mark.parametrize("token", [None, "hf_valid"])
@pytest.mark.parametrize(
    "setup",
    ["nothing-published", "other-repos-gated", "private-elsewhere"],
)
def test_a_missing_repository_is_never_reported_as_gated(
    hub: LocalHub, token: str | None, setup: str
) -> None:
    hub.add_token("hf_valid")
    if setup == "other-repos-gated":
        hub.add_repo("mlx-community/gemma-3-4b-it-4bit", model_files(), gated="manual")
    if setup == "private-elsewhere":
        hub.add_repo("mlx-community/Private", model_files(), private=True)
    report = client(hub, token).inspect("mlx-community/Qwen3.5-8B-4bit")
    assert report.verdict is not Verdict.GATED
    assert report.gated_mode is None
    assert report.verdict is Verdict.PRIVATE_OR_MISSING  # the Hub never says "missing" for sure
    (problem,) = hub_problems(
        CatalogEntry.model_validate(
            entry(
                sources={"int4": {"hf_repo": "mlx-community/Qwen3.5-8B-4bit", "disk_size_gb": 4.5}}
            )
        ),
        "int4",
        report,
    )
    assert "gated" not in problem


def test_anonymous_401_says_it_cannot_tell_missing_from_private(hub: LocalHub) -> None:
    (problem,) = problems_for(hub, entry())
    assert "is missing or private (HTTP 401 RepoNotFound to an anonymous request" in problem
    assert "set HF_TOKEN" in problem


@pytest.mark.parametrize("published", [False, True], ids=["missing", "private-to-others"])
def test_with_a_token_404_means_missing_or_private_without_access(
    hub: LocalHub, published: bool
) -> None:
    """The Hub answers 404 RepoNotFound to a token for a private repository it cannot read too."""
    hub.add_token("hf_other")
    if published:
        publish(hub, entry(), private=True, allowed_tokens=["hf_owner"])
    report = client(hub, "hf_other").inspect(REPO)
    assert report.verdict is Verdict.PRIVATE_OR_MISSING
    assert report.authenticated is True
    (problem,) = hub_problems(CatalogEntry.model_validate(entry()), "int4", report)
    assert (
        "does not exist on the Hub, or is private and this token has no access "
        "(HTTP 404 RepoNotFound with a valid token); correct hf_repo, or use a token of an "
        "account that can read it" in problem
    )
    assert "gated" not in problem


def test_private_repo_readable_by_the_token_is_flagged_private(hub: LocalHub) -> None:
    publish(hub, entry(), private=True, allowed_tokens=["hf_owner"])
    report = client(hub, "hf_owner").inspect(REPO)
    assert report.verdict is Verdict.EXISTS
    assert report.private is True
    (problem,) = hub_problems(CatalogEntry.model_validate(entry()), "int4", report)
    assert "is private on the Hub" in problem


@pytest.mark.parametrize("mode", ["auto", "manual"])
def test_gated_repo_reports_its_mode_and_must_match_the_entry(hub: LocalHub, mode: Any) -> None:
    publish(hub, entry(), gated=mode, allowed_tokens=["hf_granted"])
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.GATED
    assert report.gated_mode == mode
    assert report.template_unreadable == "its files are gated and no token was sent"
    assert report.template_error is None
    (problem,) = hub_problems(CatalogEntry.model_validate(entry()), "int4", report)
    assert f"is gated ({mode} approval) on the Hub but the entry says gated: false" in problem
    assert problems_for(hub, entry(gated=True)) == []
    granted = client(hub, "hf_granted").inspect(REPO)
    assert granted.chat_template is not None


def test_gated_answer_to_the_metadata_request_is_gated_without_details(hub: LocalHub) -> None:
    """Some mirrors hide a gated repository's metadata too: still gated, never missing."""
    publish(hub, entry())
    hub.fail_next(2, status=403, error_code="GatedRepo", match="/api/models/")
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.GATED
    assert report.attempts == 1  # 403 is an answer, not a hiccup: no retry
    (problem,) = hub_problems(CatalogEntry.model_validate(entry()), "int4", report)
    assert "is gated on the Hub (HTTP 403 GatedRepo) but the entry says gated: false" in problem
    assert problems_for(hub, entry(gated=True)) == []


@pytest.mark.parametrize("token", [None, "hf_other"])
def test_gated_files_without_access_leave_the_template_unverified_not_passed(
    hub: LocalHub, token: str | None
) -> None:
    hub.add_token("hf_other")
    hub.add_repo(
        REPO,
        model_files(template=PLAIN_TEMPLATE, weights_size=4_600_000_000),  # drops tools
        gated="manual",
        allowed_tokens=["hf_granted"],
    )
    gated_entry = CatalogEntry.model_validate(entry(gated=True))
    report = client(hub, token).inspect(REPO)
    assert hub_problems(gated_entry, "int4", report) == []
    who = "no token was sent" if token is None else "this token has no access"
    assert hub_unverified(gated_entry, "int4", report) == [
        f"chat template not verified: {REPO} is gated (its files are gated and {who}); set "
        "HF_TOKEN to a token with access to check it"
    ]
    granted = client(hub, "hf_granted").inspect(REPO)  # with access the check runs, and fails
    assert hub_unverified(gated_entry, "int4", granted) == []
    (problem,) = hub_problems(gated_entry, "int4", granted)
    assert "never reads `tools`" in problem


def test_gated_metadata_answer_leaves_the_contents_unverified(hub: LocalHub) -> None:
    publish(hub, entry())
    hub.fail_next(1, status=403, error_code="GatedRepo", match="/api/models/")
    report = client(hub).inspect(REPO)
    gated_entry = CatalogEntry.model_validate(entry(gated=True))
    assert hub_problems(gated_entry, "int4", report) == []
    (reason,) = hub_unverified(gated_entry, "int4", report)
    assert reason.startswith(
        f"contents of {REPO} not verified: the Hub answered HTTP 403 GatedRepo"
    )


@pytest.mark.parametrize("template", [PLAIN_TEMPLATE, None], ids=["drops-tools", "none"])
def test_a_template_that_cannot_be_fetched_is_a_problem(
    hub: LocalHub, template: str | None
) -> None:
    """A 503 on the template file must fail the entry, whatever the template would have said."""
    hub.add_repo(REPO, model_files(template=template, weights_size=4_600_000_000))
    hub.fail_next(100, status=503, match="/resolve/")
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.EXISTS
    assert report.template_error_verdict is Verdict.UNREACHABLE
    e = CatalogEntry.model_validate(entry())
    (problem,) = hub_problems(e, "int4", report)
    assert problem == (
        f"the chat template of sources.int4.hf_repo {REPO} could not be read from the Hub at "
        f"{hub.url} (reading tokenizer_config.json failed: HTTP 503 after 4 attempts), so it was "
        "not checked; retry later, or set HF_HUB_OFFLINE=1 to skip the Hub checks"
    )
    assert hub_unverified(e, "int4", report) == []


def test_a_template_answer_that_is_an_error_is_a_problem(hub: LocalHub) -> None:
    publish(hub, entry())
    hub.fail_next(1, status=400, match="/resolve/")
    report = client(hub).inspect(REPO)
    assert report.template_error_verdict is Verdict.ERROR
    (problem,) = hub_problems(CatalogEntry.model_validate(entry()), "int4", report)
    assert "could not be read from the Hub" in problem
    assert "HTTP 400" in problem
    assert problem.endswith("check hf_repo, its files and HF_TOKEN")


def test_entry_claiming_gated_for_an_open_repo_fails(hub: LocalHub) -> None:
    publish(hub, entry())
    (problem,) = problems_for(hub, entry(gated=True))
    assert "is not gated on the Hub but the entry says gated: true" in problem


def test_retries_5xx_then_succeeds(hub: LocalHub) -> None:
    publish(hub, entry())
    hub.fail_next(2, status=503, match="/api/models/")
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.EXISTS
    assert report.attempts == 4  # 3 for the info, 1 for the template
    statuses = [r.status for r in hub.requests if r.path.startswith("/api/models/")]
    assert statuses == [503, 503, 200]


@pytest.mark.parametrize("status", [500, 501, 505, 507, 508, 511, 599])
def test_any_5xx_is_retried(hub: LocalHub, status: int) -> None:
    publish(hub, entry())
    hub.fail_next(1, status=status, match="/api/models/")
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.EXISTS, report.detail
    statuses = [r.status for r in hub.requests if r.path.startswith("/api/models/")]
    assert statuses == [status, 200]


@pytest.mark.parametrize("status", [501, 507])
def test_persistent_unusual_5xx_is_unreachable_after_every_attempt(
    hub: LocalHub, status: int
) -> None:
    publish(hub, entry())
    hub.fail_next(100, status=status, match="/api/models/")
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.UNREACHABLE
    assert report.attempts == 4
    assert report.detail == f"HTTP {status} after 4 attempts"


@pytest.mark.parametrize("status", [400, 405, 418])
def test_4xx_other_than_429_is_not_retried(hub: LocalHub, status: int) -> None:
    publish(hub, entry())
    hub.fail_next(1, status=status, match="/api/models/")
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.ERROR
    assert report.attempts == 1


def test_429_waits_as_long_as_retry_after_says(hub: LocalHub) -> None:
    publish(hub, entry())
    hub.fail_next(1, status=429, retry_after=2.5, match="/api/models/")
    slept: list[float] = []
    retry = RetryPolicy(base_delay=0.001, sleep=slept.append)
    assert client(hub, retry=retry).inspect(REPO).verdict is Verdict.EXISTS
    assert slept == [2.5]


def test_backoff_doubles_between_attempts() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100)
    delays = [policy.delay(n, None) for n in (1, 2, 3)]
    assert 0.75 <= delays[0] <= 1.25
    assert 1.5 <= delays[1] <= 2.5
    assert 3.0 <= delays[2] <= 5.0
    assert RetryPolicy(max_delay=10).delay(1, 60) == 10


def test_persistent_5xx_is_unreachable_not_missing(hub: LocalHub) -> None:
    publish(hub, entry())
    hub.fail_next(100, status=502)
    report = client(hub).inspect(REPO)
    assert report.verdict is Verdict.UNREACHABLE
    assert report.attempts == 4
    (problem,) = hub_problems(CatalogEntry.model_validate(entry()), "int4", report)
    assert "HTTP 502 after 4 attempts" in problem
    assert "set HF_HUB_OFFLINE=1" in problem


def test_closed_port_is_unreachable() -> None:
    hub = LocalHub().start()
    url = hub.url
    hub.stop()
    settings = HubSettings(endpoint=url)
    report = HubClient(settings, retry=FAST).inspect(REPO)
    assert report.verdict is Verdict.UNREACHABLE
    assert "ConnectError" in report.detail
    assert report.attempts == 4


def test_rejected_token_is_an_error_not_a_missing_repo(hub: LocalHub) -> None:
    publish(hub, entry())
    report = client(hub, "hf_forged").inspect(REPO)
    assert report.verdict is Verdict.ERROR
    assert "rejected the token" in report.detail


def test_pinned_revision_must_exist(hub: LocalHub) -> None:
    sha = "a09c5dceaaa3f66f0f0e48bce98922ab92b4b59f"
    publish(hub, entry(), commit=sha)
    pinned = {"int4": {"hf_repo": REPO, "disk_size_gb": 4.6, "revision": sha}}
    assert problems_for(hub, entry(sources=pinned)) == []
    wrong = {"int4": {"hf_repo": REPO, "disk_size_gb": 4.6, "revision": "0" * 40}}
    (problem,) = problems_for(hub, entry(sources=wrong))
    assert f"revision {'0' * 40} does not exist in {REPO}" in problem


def test_size_on_the_hub_must_be_within_a_quarter(hub: LocalHub) -> None:
    hub.add_repo(REPO, model_files(weights_size=6_000_000_000))  # 6.0 GB vs 4.6 declared
    (problem,) = problems_for(hub, entry())
    assert "weights take 6.00 GB on the Hub but sources.int4.disk_size_gb says 4.6" in problem
    hub.add_repo(REPO, model_files(weights_size=5_500_000_000))  # +19.6%: fine
    assert problems_for(hub, entry()) == []


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("model.safetensors", "holds no *.safetensors weights"),
        ("config.json", "has no config.json"),
        ("tokenizer.json", "has no tokenizer files"),
        ("tokenizer_config.json", "has no chat template"),
    ],
)
def test_incomplete_repository_fails(hub: LocalHub, drop: str, expected: str) -> None:
    files = model_files(weights_size=4_600_000_000)
    del files[drop]
    hub.add_repo(REPO, files)
    problems = problems_for(hub, entry())
    assert any(expected in p for p in problems), problems


def test_tool_entry_needs_a_template_that_reads_tools(hub: LocalHub) -> None:
    hub.add_repo(REPO, model_files(template=PLAIN_TEMPLATE, weights_size=4_600_000_000))
    (problem,) = problems_for(hub, entry())
    assert "never reads `tools`" in problem
    no_tools = entry(capabilities={"thinking": True, "reasoning_parser": "qwen3"})
    assert problems_for(hub, no_tools) == []


def test_chat_template_jinja_is_read_first(hub: LocalHub) -> None:
    files = model_files(template=None, weights_size=4_600_000_000)
    files["chat_template.jinja"] = "{% for t in tools %}{{ t }}{% endfor %}"
    hub.add_repo(REPO, files)
    report = client(hub).inspect(REPO)
    assert report.template_file == "chat_template.jinja"
    assert problems_for(hub, entry()) == []


def test_offline_asks_nothing(hub: LocalHub) -> None:
    settings = HubSettings(endpoint=hub.url, offline=True)
    report = HubClient(settings).inspect(REPO)
    assert report.verdict is Verdict.SKIPPED
    assert hub.requests == []


def test_settings_are_read_from_the_environment_at_call_time(
    local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert HubSettings.from_env().endpoint == local_hub.url
    assert HubSettings.from_env().token is None
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = HubSettings.from_env()
    assert settings.token == "hf_from_env"
    assert settings.offline is True


def test_concurrency_is_bounded_and_used(hub: LocalHub) -> None:
    repos = [f"org/model-{i}" for i in range(12)]
    for repo in repos:
        hub.add_repo(repo, model_files())
    hub.latency = 0.05
    reports = client(hub, workers=4).inspect_many((r, None) for r in repos)
    assert all(r.verdict is Verdict.EXISTS for r in reports.values())
    assert 2 <= hub.max_in_flight <= 4


def test_every_shipped_source_checks_clean_against_a_faithful_hub(hub: LocalHub) -> None:
    """The default catalog on a hub that holds exactly what the entries claim."""
    catalog = load_catalog()
    for e in catalog:
        for source in e.sources.values():
            assert source.hf_repo is not None
            files = model_files(weights_size=int((source.disk_size_gb or 1) * 1e9))
            if not e.capabilities.tool_calling:
                files["tokenizer_config.json"] = json.dumps({"chat_template": PLAIN_TEMPLATE})
            hub.add_repo(source.hf_repo, files, commit=source.revision)
    targets = [(s.hf_repo, s.revision) for e in catalog for s in e.sources.values()]
    reports = client(hub).inspect_many(targets)  # type: ignore[arg-type]
    for e in catalog:
        for quant, s in e.sources.items():
            assert hub_problems(e, quant, reports[(s.hf_repo, s.revision)]) == [], e.id  # type: ignore[index]


def _model_requests(hub: LocalHub) -> list[str]:
    return [r.path for r in hub.requests if "/api/models/" in r.path or "/resolve/" in r.path]


def test_shared_reports_are_asked_once_and_read_back_equal(hub: LocalHub, tmp_path: Path) -> None:
    """What xdist workers do: the first asks and writes, the next only reads."""
    repos = [f"org/model-{i}" for i in range(3)]
    for repo in repos:
        hub.add_repo(repo, model_files())
    hub.add_token("hf_valid")
    targets = [(r, None) for r in [*repos, "org/missing"]]
    first = inspect_shared(client(hub), targets, tmp_path)
    asked = len(_model_requests(hub))
    assert asked == 3 * 2 + 1  # info and template per repository, info for the missing one
    second = inspect_shared(client(hub), targets, tmp_path)
    assert len(_model_requests(hub)) == asked  # read back, not asked again
    assert second == first
    assert second[("org/missing", None)].verdict is Verdict.PRIVATE_OR_MISSING
    assert (
        RepoReport.from_json(json.loads(json.dumps(first[targets[0]].to_json())))
        == first[targets[0]]
    )
    hub.add_repo("org/late", model_files())
    more = inspect_shared(client(hub), [*targets, ("org/late", None)], tmp_path)
    assert len(_model_requests(hub)) == asked + 2  # only the target the file lacked
    assert more[("org/late", None)].verdict is Verdict.EXISTS
    other_token = inspect_shared(client(hub, "hf_valid"), targets[:1], tmp_path)
    assert other_token[targets[0]].authenticated  # other credentials never share answers
