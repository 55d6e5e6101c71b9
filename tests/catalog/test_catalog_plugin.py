"""``pytest --mlx-catalog`` end to end through pytester, against a real local Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from catalog_helpers import dump, entry, model_files, publish

from pytest_mlxstack.catalog import load_catalog
from pytest_mlxstack.catalog.hubserver import LocalHub

GOOD = entry()
MISSING = entry(
    id="qwen3.5-8b",
    sources={"int4": {"hf_repo": "mlx-community/Qwen3.5-8B-4bit", "disk_size_gb": 4.5}},
)
GATED = entry(
    id="gemma-3-4b",
    capabilities={},
    sources={"int4": {"hf_repo": "mlx-community/gemma-3-4b-it-4bit", "disk_size_gb": 3.0}},
    params_b=4.3,
)
PRIVATE = entry(
    id="private-8b",
    sources={"int4": {"hf_repo": "someone/private-8b-4bit", "disk_size_gb": 4.6}},
)


def write_catalog(pytester: pytest.Pytester, *entries: dict[str, Any]) -> Path:
    folder = pytester.path / "catalog"
    folder.mkdir(exist_ok=True)
    for data in entries:
        (folder / f"{data['id']}.yaml").write_text(dump(data), encoding="utf-8")
    return folder


def outcomes_by_test(result: pytest.RunResult) -> dict[str, str]:
    """``{"test_hub[qwen3-8b-int4]": "PASSED", ...}`` from ``-v`` output."""
    found = {}
    for line in result.outlines:
        for word in ("PASSED", "FAILED", "SKIPPED"):
            if line.startswith("catalog_suite.py::") and f" {word}" in line:
                found[line.split()[0].split("::", 1)[1]] = word
    return found


def test_runs_in_a_repo_without_tests_with_readable_ids(
    pytester: pytest.Pytester, local_hub: LocalHub
) -> None:
    publish(local_hub, GOOD)
    write_catalog(pytester, GOOD)
    result = pytester.runpytest("--mlx-catalog=catalog", "-v", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, skipped=1)  # test_local_files: no local source
    assert outcomes_by_test(result) == {
        "test_int4_source[qwen3-8b]": "PASSED",
        "test_benchmarks[qwen3-8b]": "PASSED",
        "test_disk_size[qwen3-8b-int4]": "PASSED",
        "test_hub[qwen3-8b-int4]": "PASSED",
        "test_local_files[none]": "SKIPPED",
    }
    result.stdout.fnmatch_lines(["*no source in this catalog needs test_local_files*"])


def test_missing_gated_and_private_are_told_apart(
    pytester: pytest.Pytester, local_hub: LocalHub
) -> None:
    publish(local_hub, GOOD)
    publish(local_hub, GATED, gated="manual")
    publish(local_hub, PRIVATE, private=True)
    write_catalog(pytester, GOOD, MISSING, GATED, PRIVATE)
    result = pytester.runpytest("--mlx-catalog=catalog", "-v", "-k", "test_hub")
    outcomes = outcomes_by_test(result)
    assert outcomes == {
        "test_hub[gemma-3-4b-int4]": "FAILED",
        "test_hub[private-8b-int4]": "FAILED",
        "test_hub[qwen3-8b-int4]": "PASSED",
        "test_hub[qwen3.5-8b-int4]": "FAILED",
    }
    text = result.stdout.str()
    assert "gemma-3-4b-it-4bit is gated (manual approval) on the Hub but the entry says" in text
    assert "Qwen3.5-8B-4bit is missing or private (HTTP 401 RepoNotFound" in text
    assert "private-8b-4bit is missing or private" in text
    assert "Qwen3.5-8B-4bit is gated" not in text


def test_with_a_token_missing_and_private_differ(
    pytester: pytest.Pytester, local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(local_hub, PRIVATE, private=True, allowed_tokens=["hf_owner"])
    write_catalog(pytester, MISSING, PRIVATE)
    monkeypatch.setenv("HF_TOKEN", "hf_owner")
    result = pytester.runpytest("--mlx-catalog=catalog", "-k", "test_hub")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*private-8b-4bit is private on the Hub*",
            "*Qwen3.5-8B-4bit does not exist on the Hub, or is private and this token has no "
            "access (HTTP 404 RepoNotFound with a valid token)*",
        ]
    )


def test_broken_catalog_is_a_usage_error_in_one_line(pytester: pytest.Pytester) -> None:
    folder = write_catalog(pytester, entry(capabilities={"tool_calling": True}))
    result = pytester.runpytest_subprocess("--mlx-catalog=catalog")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert errors == [
        f"ERROR: Catalog file {folder / 'qwen3-8b.yaml'}, entry 'qwen3-8b', field "
        "'capabilities.tool_call_parser': is missing although tool_calling is true; name the "
        f"vllm-mlx parser ({errors[0].split('parser (')[1].split(')')[0]}) or set tool_calling: "
        "false."
    ]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_offline_skips_hub_checks_and_still_runs_structural_ones(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_catalog(pytester, GOOD, MISSING)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = pytester.runpytest("--mlx-catalog=catalog", "-rs")
    result.assert_outcomes(passed=6, skipped=3)
    result.stdout.fnmatch_lines(["*SKIPPED [[]2[]]*HF_HUB_OFFLINE is set: Hub checks skipped*"])


def test_bare_option_validates_the_shipped_catalog(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = pytester.runpytest("--mlx-catalog", "-q", "-k", "test_int4_source")
    result.assert_outcomes(passed=len(load_catalog()))


def test_ini_key_activates_and_resolves_against_the_ini_folder(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_catalog(pytester, GOOD)
    pytester.makeini("[pytest]\nmlx_catalog = catalog\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sub = pytester.mkdir("sub")
    monkeypatch.chdir(sub)
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=3, skipped=2)


def test_marker_selects_the_suite_and_user_tests_still_run_when_named(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_catalog(pytester, GOOD)
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    only_suite = pytester.runpytest("--mlx-catalog=catalog", "-q")
    only_suite.assert_outcomes(passed=3, skipped=2)  # no paths given: only the suite
    both = pytester.runpytest("--mlx-catalog=catalog", "test_mine.py", "-q")
    both.assert_outcomes(passed=4, skipped=2)
    selected = pytester.runpytest(
        "--mlx-catalog=catalog", "test_mine.py", "-m", "catalog_validation", "-q"
    )
    selected.assert_outcomes(passed=3, skipped=2, deselected=1)
    plain = pytester.runpytest("-q")
    plain.assert_outcomes(passed=1)


def test_local_source_gets_local_checks_instead_of_hub_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = pytester.mkdir("models") / "tiny"
    model.mkdir()
    for name, content in model_files().items():
        data = content if isinstance(content, bytes) else str(content).encode()
        (model / name).write_bytes(data)
    local = entry(
        id="tiny-chat",
        params_b=0.0004,
        sources={"int4": {"local_path": "../models/tiny"}},
        benchmarks={"linux-x86-cpu": {"gen_tps": 1400, "memory_gb": 0.1}},
    )
    write_catalog(pytester, local)
    result = pytester.runpytest("--mlx-catalog=catalog", "-v", "-rs")
    assert outcomes_by_test(result) == {
        "test_int4_source[tiny-chat]": "PASSED",
        "test_benchmarks[tiny-chat]": "PASSED",
        "test_local_files[tiny-chat-int4]": "PASSED",
        "test_hub[tiny-chat-int4]": "SKIPPED",
        "test_disk_size[none]": "SKIPPED",  # a local source declares no size
    }
    result.stdout.fnmatch_lines(["*local source: the Hub checks do not apply*"])
    (model / "config.json").unlink()
    broken = pytester.runpytest("--mlx-catalog=catalog", "-k", "test_local_files")
    broken.assert_outcomes(failed=1)
    broken.stdout.fnmatch_lines(["*local_path*tiny has no config.json*"])


def test_under_xdist_every_test_runs_once(pytester: pytest.Pytester, local_hub: LocalHub) -> None:
    publish(local_hub, GOOD)
    write_catalog(pytester, GOOD, MISSING)
    result = pytester.runpytest_subprocess("--mlx-catalog=catalog", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=7, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*FAILED *test_hub[[]qwen3.5-8b-int4[]]*"])


def _model_requests(hub: LocalHub) -> int:
    """Requests about repositories (what a rate limit counts), not huggingface_hub's own."""
    return sum("/api/models/" in r.path or "/resolve/" in r.path for r in hub.requests)


def test_under_xdist_the_hub_is_asked_once_per_run(
    pytester: pytest.Pytester, local_hub: LocalHub
) -> None:
    """Every worker collects every test_hub item; still one inspection per repository."""
    entries = [
        entry(id=f"m{i}", sources={"int4": {"hf_repo": f"org/m{i}", "disk_size_gb": 4.6}})
        for i in range(6)
    ]
    for data in entries:
        publish(local_hub, data)
    write_catalog(pytester, *entries)
    counts = {}
    for workers in ("0", "2"):
        local_hub.clear_requests()
        result = pytester.runpytest_subprocess(
            "--mlx-catalog=catalog", "-k", "test_hub", "-v", "-n", workers, "-p", "xdist"
        )
        result.assert_outcomes(passed=6)
        counts[workers] = _model_requests(local_hub)
        if workers == "2":  # both workers ran test_hub items (each would have asked for all)
            ran_on = {
                line.split()[0]
                for line in result.outlines
                if "PASSED catalog_suite.py::test_hub" in line
            }
            assert ran_on == {"[gw0]", "[gw1]"}, result.outlines
    assert counts == {"0": 12, "2": 12}  # model info and chat template per repository


def test_unreadable_chat_template_fails_the_hub_test(
    pytester: pytest.Pytester, local_hub: LocalHub
) -> None:
    publish(local_hub, GOOD)
    local_hub.fail_next(100, status=503, match="/resolve/")
    write_catalog(pytester, GOOD)
    result = pytester.runpytest("--mlx-catalog=catalog", "-k", "test_hub")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the chat template of sources.int4.hf_repo mlx-community/Qwen3-8B-4bit could not be "
            "read from the Hub at * (reading tokenizer_config.json failed: HTTP 503 after 4 "
            "attempts), so it was not checked; retry later*"
        ]
    )


def test_gated_tool_repo_without_access_skips_with_the_reason(
    pytester: pytest.Pytester, local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gated = entry(gated=True)  # a tool-calling entry whose template must read `tools`
    publish(local_hub, gated, gated="manual", allowed_tokens=["hf_granted"])
    write_catalog(pytester, gated)
    anonymous = pytester.runpytest("--mlx-catalog=catalog", "-k", "test_hub", "-rs")
    anonymous.assert_outcomes(skipped=1)
    anonymous.stdout.fnmatch_lines(
        [
            "*chat template not verified: mlx-community/Qwen3-8B-4bit is gated (its files are "
            "gated and no token was sent); set HF_TOKEN to a token with access to check it*"
        ]
    )
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    granted = pytester.runpytest("--mlx-catalog=catalog", "-k", "test_hub")
    granted.assert_outcomes(passed=1)


@pytest.mark.parametrize("login", ["token-file", "legacy-variable"])
def test_local_hub_is_anonymous_on_a_logged_in_machine(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, login: str
) -> None:
    """A stored token (hf auth login) or HUGGING_FACE_HUB_TOKEN must not reach the local Hub."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    token_file = tmp_path / "hf-home" / "token"
    token_file.parent.mkdir()
    token_file.write_text("hf_stored_login_token\n")
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))  # read when huggingface_hub imports
    if login == "legacy-variable":
        monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy_variable")
    pytester.makepyfile(
        test_anonymous="""
        import subprocess, sys
        from huggingface_hub import HfApi, get_token
        from pytest_mlxstack.catalog.hub import HubSettings

        def test_anonymous(local_hub):
            local_hub.add_repo("org/model", {"config.json": "{}"})
            assert get_token() is None
            assert HubSettings.from_env().token is None
            HfApi(endpoint=local_hub.url).model_info("org/model")
            assert [r.authenticated for r in local_hub.requests if "/api/models/" in r.path] == [
                False
            ]
            child = "from huggingface_hub import get_token; print(get_token())"
            out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
            assert out.stdout.strip() == "None"  # processes the test starts too
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("value", ["0", "many"])
def test_bad_hub_workers_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    write_catalog(pytester, GOOD)
    result = pytester.runpytest("--mlx-catalog=catalog", f"--mlx-hub-workers={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --mlx-hub-workers: Hub worker count '{value}' is not a whole number*; "
            "give a whole number from 1 to 256 such as 32."
        ]
    )


def test_a_test_path_swallowed_by_the_option_gets_a_hint(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = pytester.runpytest("--mlx-catalog", ".")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: Catalog folder *: the catalog is empty*write --mlx-catalog=CATALOG or put the*"]
    )
