"""The built-in suites run for real (vllm-mlx, LiteLLM, the openai client) in inner pytest
processes: a model whose server does not start, xdist workers sharing one server, a server
that dies and comes back, and the progress lines that say which tier runs.

Each run uses one or two fixture models and the smoke (plus harness) suite, so that it stays
around ten seconds of real serving.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_mlxstack.fixture_models import fixture_catalog_path, fixture_model_path
from pytest_mlxstack.mainjob import EXPECTATIONS
from pytest_mlxstack.matrix.expectations import load_expectations
from pytest_mlxstack.matrix.model import Matrix, Row, load_matrix
from pytest_mlxstack.matrix.verdicts import Route, Verdict
from pytest_mlxstack.probes import capability_names
from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.wiring.skips import (
    skip_no_litellm,
    skip_no_mlx_backend,
    skip_no_openai,
    skip_no_vllm,
)
from pytest_mlxstack.wiring.suites import SUITE_DIR

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_mlx_backend, skip_no_openai]

SMOKE = capability_names(route=Route.DIRECT)
HARNESS = (*capability_names(route=Route.PROXIED), "model_listing")
BROKEN = "tiny-chat-broken"
# The inner runs use the fixture expectations, as the main job does: the cells vllm-mlx gets
# wrong for every model (stop, usage, ...) xfail and stay "fail" in the matrix.
KNOWN = load_expectations(EXPECTATIONS)
KNOWN.server = "vllm-mlx"  # the inner runs use the default server kind
SERVER_FAULTS = {
    capability
    for capability in SMOKE
    if (rule := KNOWN.find(model="tiny-chat", quant="bf16", capability=capability, route="direct"))
    and rule.verdict is Verdict.FAIL
}


def good_verdict(capability: str, route: str) -> str:
    """What tiny-chat gets on ``route``: ``fail`` where the expectations know a fault."""
    rule = KNOWN.find(model="tiny-chat", quant="bf16", capability=capability, route=route)
    return "fail" if rule is not None and rule.verdict is Verdict.FAIL else "pass"


def known_fault(test_name: str) -> bool:
    """Whether a ``[tiny-chat-bf16-<route>-<capability>]`` test fails as the expectations say."""
    route = "direct" if "-direct" in test_name else "proxied"
    capability = test_name.rsplit("-", 1)[-1].rstrip("]")
    return good_verdict(capability, route) == "fail"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Its own pid registry, ports and pool: nothing shared with the outer run."""
    path = tmp_path / "mlxhome"
    monkeypatch.setenv("MLXSTACK_HOME", str(path))
    monkeypatch.delenv("MLXSTACK_MATRIX_DIR", raising=False)
    return path


def run_suites(
    pytester: pytest.Pytester, *args: str, expectations: str = str(EXPECTATIONS)
) -> pytest.RunResult:
    """The suites in a pytest subprocess; ``expectations=""`` gives no --mlx-expectations."""
    chosen = [f"--mlx-expectations={expectations}"] if expectations else []
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
        f"--junitxml={pytester.path / 'junit.xml'}",
        *chosen,
        *args,
    )


def outcomes(pytester: pytest.Pytester) -> dict[str, str]:
    """``{test name: passed|failure|error|skipped}`` from the inner run's JUnit XML."""
    found = {}
    for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"):
        verdicts = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        found[case.get("name", "")] = verdicts[0] if verdicts else "passed"
    return found


def the_row(matrix: Matrix, model: str) -> Row:
    (row,) = [row for row in matrix.rows if row.model == model]
    return row


def progress(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("mlxstack: tier ")]


def broken_copy_catalog(root: Path) -> Path:
    """A catalog of tiny-chat and a copy of it whose weights are cut short: vllm-mlx exits
    while loading the copy."""
    broken = root / "models" / BROKEN
    shutil.copytree(fixture_model_path("tiny-chat"), broken)
    with (broken / "model.safetensors").open("r+b") as weights:
        weights.truncate(1000)
    catalog = root / "catalog"
    catalog.mkdir()
    entry = (fixture_catalog_path() / "tiny-chat.yaml").read_text(encoding="utf-8")
    good = entry.replace("../tiny-chat", str(fixture_model_path("tiny-chat")))
    (catalog / "tiny-chat.yaml").write_text(good, encoding="utf-8")
    bad = entry.replace("id: tiny-chat\n", f"id: {BROKEN}\n").replace("../tiny-chat", str(broken))
    (catalog / f"{BROKEN}.yaml").write_text(bad, encoding="utf-8")
    return catalog


def test_a_model_whose_server_does_not_start_costs_only_its_own_cells(
    pytester: pytest.Pytester, home: Path
) -> None:
    catalog = broken_copy_catalog(pytester.path)
    result = run_suites(pytester, "--mlx-suites=smoke,harness", f"--mlx-suite-catalog={catalog}")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    matrix = load_matrix(pytester.path / "matrices" / "latest.json")
    expected = {(c, "direct") for c in SMOKE} | {(c, "proxied") for c in HARNESS}

    good = the_row(matrix, "tiny-chat")
    assert {cell.key: cell.verdict.value for cell in good.cells} == {
        key: good_verdict(*key) for key in expected
    }
    assert (good.server_starts, good.repo) == (1, "fixture:tiny-chat")
    # measured with one streamed request straight to its vllm-mlx
    assert (good.ttft_s or 0) > 0
    assert (good.decode_tokens_per_s or 0) > 0
    assert (good.prompt_tokens_per_s or 0) > 0
    assert re.fullmatch(r"[0-9a-f]{12}", good.revision or ""), good.revision

    bad = the_row(matrix, BROKEN)
    assert {cell.key: (cell.verdict.value, cell.attribution) for cell in bad.cells} == (
        dict.fromkeys(expected, ("fail", "server_down"))
    )
    assert (bad.server_starts, bad.repo) == (0, str(pytester.path / "models" / BROKEN))
    assert (bad.ttft_s, bad.decode_tokens_per_s, bad.prompt_tokens_per_s) == (None, None, None)
    cell = bad.cell("inference", "direct")
    assert cell is not None
    assert cell.reason.startswith("the server did not start, so nothing was asked: vllm-mlx for")
    assert "exited with code" in cell.reason
    _, log = cell.evidence.notes
    assert log.startswith("last lines of its log:\n")
    assert "Traceback" in log or "Error" in log  # vllm-mlx's own account of the crash

    tests = outcomes(pytester)
    assert len(tests) == 2 * (len(SMOKE) + len(HARNESS))
    good_tests = {name: v for name, v in tests.items() if "[tiny-chat-bf16" in name}
    assert {name for name, v in good_tests.items() if v != "passed"} == {
        name for name in good_tests if known_fault(name)
    }
    assert set(good_tests.values()) <= {"passed", "skipped"}  # JUnit writes xfail as skipped
    assert {v for name, v in tests.items() if BROKEN in name} == {"failure"}
    result.stdout.fnmatch_lines(
        [
            "*inference (direct) for tiny-chat-broken [[]bf16[]] failed (server_down): the "
            "server did not start, so nothing was asked: vllm-mlx for *"
        ]
    )
    assert progress(result) == [
        "mlxstack: tier 2 (smoke): 2 models",
        "mlxstack: tier 4 (harness): 2 models",
    ]
    result.stdout.fnmatch_lines([f"mlxstack: {BROKEN}-bf16 did not start; its tests fail as *"])
    assert PidRegistry(home).records() == []


def test_xdist_workers_share_one_server_and_write_one_matrix(
    pytester: pytest.Pytester, home: Path
) -> None:
    result = run_suites(pytester, "--mlx-suites=smoke", "--mlx-models=tiny-chat", "-n", "2")

    result.assert_outcomes(passed=len(SMOKE) - len(SERVER_FAULTS), xfailed=len(SERVER_FAULTS))
    runs = list((pytester.path / "matrices" / "runs").glob("*.json"))
    assert len(runs) == 1  # the controller wrote it; the workers wrote nothing
    (row,) = load_matrix(runs[0]).rows
    assert {cell.key: cell.verdict.value for cell in row.cells} == {
        (capability, "direct"): good_verdict(capability, "direct") for capability in SMOKE
    }
    # Both workers used the server; the pool (and its start count) is the run's, not theirs.
    assert row.server_starts == 1
    assert {cell.test_id.split("::")[-1] for cell in row.cells} == {
        f"test_capability[tiny-chat-bf16-direct-{capability}]" for capability in SMOKE
    }
    assert progress(result) == ["mlxstack: tier 2 (smoke): 1 model"]
    starts = [line for line in result.outlines if re.search(r"\d+ start\(s\)", line)]
    assert len(starts) == 1, starts
    assert ": 1 start(s) " in starts[0], starts


RESTART = """
import psutil
from openai import OpenAI

from pytest_mlxstack.matrix.verdicts import Route, Verdict
from pytest_mlxstack.probes import run_probe
from pytest_mlxstack.run.recording import record


def test_a_server_that_died_is_started_again(
    mlx_suite_run, mlx_suite_stack, mlx_server_pool, mlx_matrix
):
    (target,) = mlx_suite_run.targets
    assert mlx_suite_stack.server_starts(target) == 1
    server = psutil.Process(mlx_suite_stack.stack.tier(target.tier).service.pid)
    for process in [*server.children(recursive=True), server]:
        process.kill()
    server.wait(30)
    # What any later stack of the session gets: the pool starts the dead server again.
    tier, model = mlx_suite_stack.served[target.tier]
    again = mlx_server_pool.serve(tier, model)
    with OpenAI(base_url=again.base_url, api_key="unused", max_retries=0) as client:
        result = run_probe("inference", client, again.served_name)
    assert result.verdict is Verdict.PASS, result.reason
    record(result, target, mlx_suite_stack, Route.DIRECT, mlx_matrix)
    (count,) = mlx_server_pool.start_counts()
    assert count.starts == mlx_suite_stack.server_starts(target) == 2
"""


def test_a_server_that_died_and_came_back_counts_two_starts(
    pytester: pytest.Pytester, home: Path
) -> None:
    """The smoke suite records one start; then a test kills the pooled server and has the
    pool start it again: the row must say 2, as the pool's ledger does."""
    pytester.makepyfile(test_restart=RESTART)
    result = run_suites(
        pytester,
        str(SUITE_DIR / "smoke.py"),
        "test_restart.py",
        "--mlx-suites=smoke",
        "--mlx-models=tiny-chat",
    )

    result.assert_outcomes(passed=len(SMOKE) - len(SERVER_FAULTS) + 1, xfailed=len(SERVER_FAULTS))
    (row,) = load_matrix(pytester.path / "matrices" / "latest.json").rows
    assert row.server_starts == 2
    result.stdout.fnmatch_lines(["tiny-chat:bf16 as tiny-chat: 2 start(s) in vllm-mlx *"])
    assert PidRegistry(home).records() == []


def test_the_shipped_fixture_catalog_passes_out_of_the_box(
    pytester: pytest.Pytester, home: Path
) -> None:
    """``pytest --mlx-suites`` as the README says, no expectations file given: the negative
    controls' known failures apply by themselves (and the summary says so), so the run passes;
    ``--mlx-expectations=none`` shows them as failures again."""
    models = "--mlx-models=tiny-chat-no-tools"

    result = run_suites(pytester, "--mlx-suites=smoke", models, expectations="")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    counts = result.parseoutcomes()
    assert counts.get("failed", 0) == 0
    assert counts["xfailed"] >= 2  # tool calling, plain and streamed: the known failures
    result.stdout.fnmatch_lines(
        [
            "expectations: the shipped fixture catalog's negative controls: *fixture_expectations"
            ".yaml applies by itself (--mlx-expectations=none turns it off)"
        ]
    )

    raw = run_suites(pytester, "--mlx-suites=smoke", models, expectations="none")

    assert raw.ret == pytest.ExitCode.TESTS_FAILED
    raw.assert_outcomes(passed=counts["passed"], failed=counts["xfailed"])
    assert "applies by itself" not in raw.stdout.str()
