"""``--mlx-suites``, ``--mlx-suite-catalog`` and ``--mlx-models`` through a real pytest run.

Collection only: these check what a user sees (ids, markers, one-sentence errors) without
starting a server; the honesty tests run the suites for real.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_mlxstack.fixture_models import VARIANTS, fixture_catalog_path

FIXTURE_CATALOG = fixture_catalog_path()


def collected(result: pytest.RunResult) -> list[str]:
    """Test names (``test_x[id]``) from ``--collect-only -q`` output."""
    return [
        line.split("::")[-1]
        for line in result.outlines
        if "::" in line and not line.startswith(("ERROR", "FAILED"))
    ]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_every_suite_is_collected_with_readable_ids(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--mlx-suites", "--collect-only", "-q")
    names = collected(result)
    assert result.ret == 0, result.stdout.str()
    for variant in VARIANTS:
        assert f"test_capability[{variant}-bf16-direct-tool_calling]" in names
        assert f"test_openai_client[{variant}-bf16-proxied-tool_calling]" in names
        assert f"test_routing_by_tier_name[{variant}-bf16-proxied]" in names
    assert {"test_master_key_is_enforced", "test_clean_shutdown"} <= set(names)


def test_a_test_id_from_a_report_re_runs_that_one_test(pytester: pytest.Pytester) -> None:
    """Ids carry the suite module's name (``smoke.py::...``), in tier order, and an id copied
    from a report is a valid argument again: it selects exactly that test."""
    listed = run(pytester, "--mlx-suites=smoke,harness", "--collect-only", "-q").outlines
    ids = [line for line in listed if "::" in line]
    assert all(line.startswith(("smoke.py::", "harness.py::")) for line in ids), ids
    modules = [line.split("::")[0] for line in ids]
    assert modules == sorted(modules, key=["smoke.py", "harness.py"].index)  # smoke first
    one = next(line for line in ids if line.startswith("smoke.py::"))

    again = run(pytester, "--mlx-suites=smoke,harness", one, "--collect-only", "-q")

    assert again.ret == 0, again.stdout.str()
    assert collected(again) == [one.split("::", 1)[1]]


def test_the_suites_are_generated_from_the_capability_declarations(
    pytester: pytest.Pytester,
) -> None:
    """A capability registered by a plugin (one declaration, one probe) becomes a smoke test
    and a harness test for every model, on the routes it declares, after the built-in ones."""
    pytester.makeconftest(
        "from pytest_mlxstack.matrix.capabilities import CapabilitySpec\n"
        "from pytest_mlxstack.matrix.verdicts import Route\n"
        "from pytest_mlxstack.probes import register_capability, probe_inference\n"
        "register_capability(CapabilitySpec('echo', 'Echo'), probe_inference)\n"
        "register_capability(\n"
        "    CapabilitySpec('vision_stub', 'Vision', requires=('vision',),\n"
        "                   routes=(Route.PROXIED,)),\n"
        "    probe_inference,\n"
        ")\n"
    )
    result = run(pytester, "--mlx-suites=smoke,harness", "--mlx-models=tiny-chat", "--co", "-q")
    names = collected(result)
    assert result.ret == 0, result.stdout.str()
    smoke = [n for n in names if n.startswith("test_capability[")]
    assert smoke[-1] == "test_capability[tiny-chat-bf16-direct-echo]"
    assert smoke[0] == "test_capability[tiny-chat-bf16-direct-inference]"
    assert "test_openai_client[tiny-chat-bf16-proxied-echo]" in names
    assert "test_openai_client[tiny-chat-bf16-proxied-vision_stub]" in names
    assert "test_capability[tiny-chat-bf16-direct-vision_stub]" not in names


@pytest.mark.parametrize(
    ("marker", "expected", "absent"),
    [
        ("smoke", "test_capability[tiny-chat-bf16-direct-thinking]", "test_openai_client"),
        ("harness", "test_model_listing[tiny-chat-bf16-proxied]", "test_capability"),
        ("integration", "test_clean_shutdown", "test_openai_client"),
    ],
)
def test_markers_select_one_tier(
    pytester: pytest.Pytester, marker: str, expected: str, absent: str
) -> None:
    result = run(pytester, "--mlx-suites", "-m", marker, "--collect-only", "-q")
    names = collected(result)
    assert expected in names
    assert not [name for name in names if name.startswith(absent)]


def test_a_subset_of_suites_and_models(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--mlx-suites=smoke,harness",
        "--mlx-models=tiny-chat",
        "--mlx-models",
        "tiny-chat-no-think:bf16",
        "--collect-only",
        "-q",
    )
    names = collected(result)
    targets = {m.group(1) for name in names if (m := re.search(r"\[(.+?)-bf16-", name))}
    assert targets == {"tiny-chat", "tiny-chat-no-think"}
    assert not [name for name in names if name.startswith("test_routing_by_tier_name")]


def test_ini_keys_configure_the_suites(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nmlx_suites = integration\nmlx_models = tiny-chat-no-tools\n"
        f"mlx_suite_catalog = {FIXTURE_CATALOG}\n"
    )
    names = collected(run(pytester, "--collect-only", "-q"))
    assert "test_concurrent_requests[tiny-chat-no-tools-bf16-proxied]" in names
    assert not [name for name in names if "tiny-chat-bf16" in name]


def test_without_the_option_no_suite_runs_and_user_tests_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    assert collected(run(pytester, "--collect-only", "-q")) == ["test_mine"]
    both = collected(run(pytester, "--mlx-suites=smoke", "test_mine.py", "--collect-only", "-q"))
    assert "test_mine" in both
    assert "test_capability[tiny-chat-bf16-direct-inference]" in both


def test_a_catalog_of_ones_own(pytester: pytest.Pytester, tmp_path: Path) -> None:
    source = (FIXTURE_CATALOG / "tiny-chat.yaml").read_text(encoding="utf-8")
    mine = pytester.path / "mine.yaml"
    mine.write_text(
        source.replace("id: tiny-chat", "id: my-tiny").replace(
            "../tiny-chat", str(FIXTURE_CATALOG.parent / "tiny-chat")
        ),
        encoding="utf-8",
    )
    names = collected(
        run(pytester, "--mlx-suites=smoke", "--mlx-suite-catalog=mine.yaml", "--co", "-q")
    )
    assert "test_capability[my-tiny-bf16-direct-inference]" in names
    assert not [name for name in names if "tiny-chat" in name]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mlx-suites=smoke,soak"],
            "--mlx-suites: 'soak' is not a built-in suite; use all or a comma-separated list of "
            "smoke, integration, harness",
        ),
        (
            ["--mlx-suites", "--mlx-models=tiny-chat,qwen9-1t"],
            "--mlx-models: 'qwen9-1t' is not in the catalog",
        ),
        (
            ["--mlx-suites", "--mlx-models=tiny-chat:int4"],
            "--mlx-models: 'tiny-chat' has no 'int4' source",
        ),
        (
            ["--mlx-models=tiny-chat"],
            "--mlx-models selects models for the built-in suites; add --mlx-suites",
        ),
        (
            ["--mlx-suites", "--mlx-suite-catalog=nowhere"],
            "nowhere",
        ),
        (
            ["--mlx-suites", "--mlx-token-budget=0"],
            "token-budget multiplier '0'",
        ),
        (
            ["--mlx-suites", "--mlx-server-kind=ollama"],
            "--mlx-server-kind: 'ollama' is not a server kind pytest-mlxstack can start; use one "
            "of vllm-mlx, mlx-lm",
        ),
    ],
)
def test_bad_options_stop_the_run_with_one_sentence(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = run(pytester, *args, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, result.errlines
    assert message in errors[0]
    assert "Traceback" not in result.stderr.str()


def test_a_progress_line_says_which_tier_runs_once_per_tier(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test is skipped at set-up by a plugin (no server starts): the line comes when a
    tier's first test starts, from the controller, once per tier, in run order."""
    monkeypatch.setenv("MLXSTACK_HOME", str(pytester.path / "home"))
    pytester.makepyfile(
        skip_all=(
            "import pytest\n\n"
            "@pytest.hookimpl(tryfirst=True)\n"
            "def pytest_runtest_setup(item):\n"
            "    pytest.skip('no server needed to see the progress')\n"
        )
    )
    for extra in ([], ["-n", "2"]):
        result = run(
            pytester,
            "-p",
            "skip_all",
            "--mlx-suites=smoke,harness",
            "--mlx-models=tiny-chat,tiny-chat-no-think",
            *extra,
        )
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        assert [line for line in result.outlines if line.startswith("mlxstack: tier ")] == [
            "mlxstack: tier 2 (smoke): 2 models",
            "mlxstack: tier 4 (harness): 2 models",
        ], extra
