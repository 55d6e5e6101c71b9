"""Honesty: the main job on the fixture catalog must get every cell right, for the right reason.

The full model passes everything, straight to vllm-mlx and through LiteLLM; each negative
control fails exactly the capability it was built to break, attributed to the model or the
parser as its defect says, and its tests xfail through the expectations file. One real run of
``python -m pytest_mlxstack.mainjob`` (real vllm-mlx, real LiteLLM, real openai client) in a
subprocess feeds every test here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from filelock import FileLock

from pytest_mlxstack import probe_prompts
from pytest_mlxstack.fixture_models import VARIANTS
from pytest_mlxstack.matrix.model import Cell, Matrix, Row, load_matrix
from pytest_mlxstack.matrix.verdicts import Route
from pytest_mlxstack.probes import capability_names

pytest.importorskip("vllm_mlx", reason="the honesty tests run the real stack (stack extra)")
pytest.importorskip("litellm", reason="the honesty tests run the real stack (stack extra)")

# The chat capabilities on each route come from the declarations (matrix.capabilities); the
# stack checks are the integration and harness suites' own tests.
DIRECT = capability_names(route=Route.DIRECT)
PROXIED = (*capability_names(route=Route.PROXIED), "model_listing", "routing", "concurrency")
# Faults of the server (vllm-mlx 0.6.0) every variant shows, and whose fault they are.
SERVER_FAULTS = {
    "stop": "server_error",
    "usage": "server_error",
    "structured_output": "server_error",  # json_schema: HTTP 500 (llguidance needs Metal)
}
# Every cell that needs the model to call a tool.
CALLING = (
    "tool_calling",
    "tool_calling_streaming",
    "tool_choice_required",
    "tool_choice_named",
    "tool_selection",
    "parallel_tool_calls",
)
# What each negative control is built to break, and whose fault that is (on top of the
# server's faults; a control's own entry wins).
BROKEN = {
    "tiny-chat-no-tools": dict.fromkeys(CALLING, "model"),
    "tiny-chat-bad-tool-syntax": dict.fromkeys(CALLING, "parser"),
    "tiny-chat-no-think": {"thinking": "model"},
    "tiny-chat-calls-always": {"no_call": "model"},
    "tiny-chat-ignores-results": {"tool_result": "model"},
}
# The agents' protocols: every step passes, but vllm-mlx answers an unknown model in its own
# {"detail"} shape (direct), and LiteLLM drops Messages thinking blocks (proxied).
PROTOCOL_FAULTS = {
    ("responses_api", "direct"): "server_error",
    ("messages_api", "direct"): "server_error",
    ("messages_api", "proxied"): "proxy",
}
# A negative control fails the protocol session at the step it was built to break.
PROTOCOL_BROKEN = {
    "tiny-chat-no-tools": "model",
    "tiny-chat-bad-tool-syntax": "parser",
    "tiny-chat-no-think": "model",
    "tiny-chat-ignores-results": "model",  # the tool-result step
}


def failing(model: str) -> dict[str, str]:
    """Every capability ``model`` fails in the main job, and whose fault it is."""
    return {**SERVER_FAULTS, **BROKEN.get(model, {})}


@dataclass
class MainJob:
    status: int
    output: str
    matrix: Matrix
    matrix_dir: Path
    junit: ET.Element
    home: Path
    basetemp: Path

    def row(self, model: str) -> Row:
        rows = [row for row in self.matrix.rows if row.model == model]
        assert len(rows) == 1, f"{model}: {len(rows)} rows"
        return rows[0]

    def outcomes(self) -> dict[str, str]:
        """``{test name: passed|failed|error|xfailed|skipped}`` from the JUnit XML."""
        found = {}
        for case in self.junit.iter("testcase"):
            name = case.get("name", "")
            verdicts = [c for c in case if c.tag in ("failure", "error", "skipped")]
            if not verdicts:
                found[name] = "passed"
            elif verdicts[0].tag == "skipped":
                xfail = verdicts[0].get("type") == "pytest.xfail"
                found[name] = "xfailed" if xfail else "skipped"
            else:
                found[name] = verdicts[0].tag  # failure or error
        return found


@pytest.fixture(scope="module")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> MainJob:
    """One main job per test run: under xdist the first worker runs it and the others wait
    for it (a file lock in the directory the workers share) and read the same files."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the workers' basetemps are siblings
    work = shared / "honesty-mainjob"
    with FileLock(str(shared / "honesty-mainjob.lock")):
        if not (work / "output.txt").is_file():
            _run_main_job(work)
    home, basetemp, matrix_dir = work / "home", work / "basetemp", work / "matrices"
    output = (work / "output.txt").read_text(encoding="utf-8")
    assert (matrix_dir / "latest.json").is_file(), output[-3000:]
    return MainJob(
        status=int((work / "status.txt").read_text(encoding="utf-8")),
        output=output,
        matrix=load_matrix(matrix_dir / "latest.json"),
        matrix_dir=matrix_dir,
        junit=ET.parse(work / "junit.xml").getroot(),
        home=home,
        basetemp=basetemp,
    )


def _run_main_job(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLXSTACK_"))}
    env["MLXSTACK_HOME"] = str(work / "home")  # its own pid registry and pool
    command = [
        sys.executable,
        "-m",
        "pytest_mlxstack.mainjob",
        "--matrix-dir",
        str(work / "matrices"),
        "--kinds=vllm-mlx",  # mlx_lm.server's run: tests/suites/test_mainjob.py
        "--",
        f"--junitxml={work / 'junit.xml'}",
        f"--basetemp={work / 'basetemp'}",
    ]
    done = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    (work / "status.txt").write_text(str(done.returncode), encoding="utf-8")
    (work / "output.txt").write_text(done.stdout + done.stderr, encoding="utf-8")


def expected_cells(model: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    broken = failing(model)
    cells = {}
    for route, capabilities in (("direct", DIRECT), ("proxied", PROXIED)):
        for capability in capabilities:
            blame = broken.get(capability)
            if capability in ("responses_api", "messages_api"):
                blame = PROTOCOL_BROKEN.get(model) or PROTOCOL_FAULTS.get((capability, route))
            cells[(capability, route)] = ("fail", blame) if blame else ("pass", None)
    return cells


@pytest.mark.parametrize("model", list(VARIANTS))
def test_every_cell_is_right_and_every_failure_attributed_right(
    main_job: MainJob, model: str
) -> None:
    row = main_job.row(model)
    actual = {
        cell.key: (cell.verdict.value, cell.attribution.value if cell.attribution else None)
        for cell in row.cells
    }
    wrong = {
        key: {"expected": want, "actual": actual.get(key), "reason": _reason(row, key)}
        for key, want in expected_cells(model).items()
        if actual.get(key) != want
    }
    assert not wrong, wrong
    assert set(actual) == set(expected_cells(model)), "cells beyond the suites' own"


def _reason(row: Row, key: tuple[str, str]) -> str:
    cell = row.cell(*key)
    return cell.reason[:300] if cell is not None else "no cell"


def test_known_failures_xfail_and_nothing_else_fails(main_job: MainJob) -> None:
    outcomes = main_job.outcomes()
    failed = {
        name: outcome for name, outcome in outcomes.items() if outcome in ("failure", "error")
    }
    assert not failed, failed
    xfailed = {name for name, outcome in outcomes.items() if outcome == "xfailed"}
    expected = set()
    test = {"direct": "test_capability", "proxied": "test_openai_client"}
    for model in VARIANTS:
        for (capability, route), (verdict, _) in expected_cells(model).items():
            if verdict == "fail":
                expected.add(f"{test[route]}[{model}-bf16-{route}-{capability}]")
    assert xfailed == expected
    assert main_job.status == 0, main_job.output[-3000:]
    for model in VARIANTS:
        broken = expected_cells(model)
        for cell in main_job.row(model).cells:
            if broken.get(cell.key, ("pass",))[0] == "fail":
                assert cell.expectation is not None
                assert cell.expectation.status == "known_failure"


def test_tier_one_checked_the_fixture_catalog(main_job: MainJob) -> None:
    outcomes = main_job.outcomes()
    for model in VARIANTS:
        assert outcomes[f"test_local_files[{model}-bf16]"] == "passed"


def _asked(cell: Cell | None) -> str:
    assert cell is not None
    request = cell.evidence.request
    return str(request["messages"][-1]["content"])


def test_the_evidence_shows_what_each_model_said(main_job: MainJob) -> None:
    full = main_job.row("tiny-chat")
    count = full.cell("inference", "direct")
    n = int(_asked(count).removeprefix("Count to ").removesuffix("."))
    assert count is not None
    assert count.evidence.response["content"] == probe_prompts.count_to(n).expected_content
    call = full.cell("tool_calling", "proxied")
    city = _asked(call).removeprefix("What is the weather in ").removesuffix("?")
    assert call is not None
    assert call.evidence.response["tool_calls"] == [
        {"name": "get_weather", "arguments": json.dumps({"location": city})}
    ]
    thought = full.cell("thinking", "direct")
    assert thought is not None
    for way in ("streamed", "non_streamed"):
        said = thought.evidence.response[way]
        assert said["reasoning"] == probe_prompts.THINKING.expected_reasoning
        assert said["content"] == probe_prompts.THINKING.expected_content

    prose = main_job.row("tiny-chat-no-tools").cell("tool_calling", "direct")
    city = _asked(prose).removeprefix("What is the weather in ").removesuffix("?")
    assert prose is not None
    said = probe_prompts.weather(city, with_tools=False).expected_content
    assert prose.evidence.response["content"] == said
    markup = main_job.row("tiny-chat-bad-tool-syntax").cell("tool_calling", "direct")
    assert markup is not None
    assert markup.evidence.response["content"].startswith("[TOOL_CALLS]get_weather")
    unthinking = main_job.row("tiny-chat-no-think").cell("thinking", "direct")
    assert unthinking is not None
    plain = unthinking.evidence.response["non_streamed"]
    assert plain["content"] == probe_prompts.THINKING.expected_content
    assert not plain.get("reasoning")


def test_the_evidence_of_the_tool_use_cells(main_job: MainJob) -> None:
    full = main_job.row("tiny-chat")
    pair = full.cell("parallel_tool_calls", "proxied")
    assert pair is not None
    asked = _asked(pair).removeprefix("What is the weather in ").removesuffix("?")
    cities = asked.split(" and ")
    assert tuple(cities) in probe_prompts.PARALLEL_PAIRS
    assert pair.evidence.response["tool_calls"] == [
        {"name": "get_weather", "arguments": json.dumps({"location": city})} for city in cities
    ]
    named = full.cell("tool_choice_named", "direct")
    assert named is not None
    tool = named.evidence.request["tool_choice"]["function"]["name"]
    (call,) = named.evidence.response["tool_calls"]
    assert call["name"] == tool
    result = full.cell("tool_result", "direct")
    assert result is not None
    report = result.evidence.request["messages"][2]["content"]
    condition, degrees = report.removesuffix(" celsius").split(", ")
    assert condition in result.evidence.response["content"]
    assert degrees in result.evidence.response["content"]

    needless = main_job.row("tiny-chat-calls-always").cell("no_call", "direct")
    assert needless is not None
    assert needless.evidence.response["tool_calls"] == [
        {"name": "get_weather", "arguments": json.dumps({"location": "Paris"})}
    ]
    assert "which no tool helps with" in needless.reason
    ignored = main_job.row("tiny-chat-ignores-results").cell("tool_result", "proxied")
    assert ignored is not None
    assert ignored.evidence.response["content"].startswith("I hope you have a lovely day in ")
    assert "does not use the tool's result" in ignored.reason


@pytest.mark.parametrize("route", ["direct", "proxied"])
def test_structured_output_fails_on_the_servers_500_with_it_as_evidence(
    main_job: MainJob, route: str
) -> None:
    cell = main_job.row("tiny-chat").cell("structured_output", route)
    assert cell is not None
    plain = cell.evidence.response["json_object"]
    city = json.loads(plain["content"])["city"]
    assert plain["content"] == json.dumps({"city": city, "letters": len(city)})
    refused = cell.evidence.response["json_schema"]
    assert refused["status"] == 500
    assert "json_schema: " in cell.reason
    assert "HTTP 500" in cell.reason


def test_one_server_start_per_model_and_flags(main_job: MainJob) -> None:
    for row in main_job.matrix.rows:
        assert row.server_starts == 1, (row.model, row.server_starts)
        assert row.startup_s is not None
        assert row.startup_s > 0
    starts = [line for line in main_job.output.splitlines() if " start(s) " in line]
    assert len(starts) == len(VARIANTS), starts
    assert all(": 1 start(s) " in line for line in starts), starts


def test_the_summary_names_the_matrix(main_job: MainJob) -> None:
    runs = sorted((main_job.matrix_dir / "runs").glob("*.json"))
    assert len(runs) == 1
    assert runs[0].with_suffix(".html").is_file()
    assert f"matrix: {runs[0]}\n" in main_job.output
    assert f"report: {runs[0].with_suffix('.html')}\n" in main_job.output
    assert "tiny-chat-no-think [bf16]" in main_job.output
    assert "unexpected failures" not in main_job.output


def test_the_summary_says_which_agent_each_model_is_ready_for(main_job: MainJob) -> None:
    output = main_job.output
    block = output[output.index("tiny-chat [bf16] on vllm-mlx") :]
    assert (
        "  Claude Code: not ready, because direct: messages_api failed (server_error); "
        "through LiteLLM: messages_api failed (proxy)" in block
    )
    assert (
        "  Codex: ready through LiteLLM; not direct: responses_api failed (server_error)" in block
    )
    assert (
        "  Chat Completions agents (OpenCode, Aider, Continue): ready (direct and through " in block
    )
    no_tools = output[output.index("tiny-chat-no-tools [bf16] on vllm-mlx") :]
    assert "Chat Completions agents (OpenCode, Aider, Continue): not ready, because" in no_tools
    assert "Codex: 0 of 4 model(s) ready on vllm-mlx" not in output  # tiny-chat is, via LiteLLM


def test_nothing_is_left_running(main_job: MainJob) -> None:
    """Every vllm-mlx and LiteLLM of the run was started with a HOME under the run's own
    directories; none may outlive it."""
    ours = (str(main_job.home), str(main_job.basetemp))
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            home = process.environ().get("HOME", "")
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if home.startswith(ours):
            left.append((process.pid, process.info["cmdline"]))
    assert not left
