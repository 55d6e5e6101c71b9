"""Private Hub repositories (a team's own conversions): ``private: true`` on the entry.

Through ``pytest --mlx-catalog`` and the real ``huggingface_hub`` client against the local Hub:
flagged and readable with HF_TOKEN passes; readable but not flagged says to flag it; flagged
without a token stays "missing or private"; flagged but public says to unflag it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from catalog_helpers import dump, entry, publish

from pytest_mlxstack.catalog import load_catalog
from pytest_mlxstack.catalog.hubserver import LocalHub

TEAM = entry(
    id="team-8b",
    sources={"int4": {"hf_repo": "our-team/team-8b-4bit", "disk_size_gb": 4.6}},
)
FLAGGED = {**TEAM, "private": True}
TOKEN = "hf_team_member"


@pytest.fixture
def run_hub_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write the entry, set HF_TOKEN (or not), run the catalog's ``test_hub`` in pytest."""

    def run(data: dict[str, Any], token: str | None) -> pytest.RunResult:
        return _run(pytester, monkeypatch, data, token)

    return run


def _run(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    data: dict[str, Any],
    token: str | None,
) -> pytest.RunResult:
    folder = pytester.path / "catalog"
    folder.mkdir(exist_ok=True)
    (folder / "team-8b.yaml").write_text(dump(data), encoding="utf-8")
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    return pytester.runpytest("--mlx-catalog=catalog", "-k", "test_hub", "-p", "no:cacheprovider")


def test_flagged_and_readable_with_the_token_passes(run_hub_test: Any, local_hub: LocalHub) -> None:
    publish(local_hub, TEAM, private=True, allowed_tokens=[TOKEN])
    result = run_hub_test(FLAGGED, TOKEN)
    result.assert_outcomes(passed=1)
    assert any(
        request.path.startswith("/api/models/our-team/team-8b-4bit") and request.authenticated
        for request in local_hub.requests
    )


def test_readable_but_not_flagged_says_to_flag_it(run_hub_test: Any, local_hub: LocalHub) -> None:
    publish(local_hub, TEAM, private=True, allowed_tokens=[TOKEN])
    result = run_hub_test(TEAM, TOKEN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*our-team/team-8b-4bit is private on the Hub (this token can read it; users without "
            "access cannot download it) but the entry says private: false; set private: true, "
            "or publish the repository*"
        ]
    )


def test_flagged_without_a_token_stays_missing_or_private(
    run_hub_test: Any, local_hub: LocalHub
) -> None:
    publish(local_hub, TEAM, private=True, allowed_tokens=[TOKEN])
    result = run_hub_test(FLAGGED, None)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*our-team/team-8b-4bit is missing or private (HTTP 401 RepoNotFound to an anonymous "
            "request*); the entry says private: true, so set HF_TOKEN to a token of an account "
            "that can read it*"
        ]
    )


def test_flagged_with_a_token_that_cannot_read_it_fails(
    run_hub_test: Any, local_hub: LocalHub
) -> None:
    publish(local_hub, TEAM, private=True, allowed_tokens=[TOKEN])
    local_hub.add_token("hf_outsider")
    result = run_hub_test(FLAGGED, "hf_outsider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*does not exist on the Hub, or is private and this token has no access*"]
    )


def test_flagged_but_public_says_to_unflag_it(run_hub_test: Any, local_hub: LocalHub) -> None:
    publish(local_hub, TEAM)
    result = run_hub_test(FLAGGED, None)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*our-team/team-8b-4bit is public on the Hub but the entry says private: true; set "
            "private: false*"
        ]
    )


def test_the_flag_loads_and_defaults_to_false(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(dump(FLAGGED), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(dump(entry()), encoding="utf-8")
    catalog = load_catalog(tmp_path)
    assert catalog.get("team-8b").private is True
    assert catalog.get("qwen3-8b").private is False
