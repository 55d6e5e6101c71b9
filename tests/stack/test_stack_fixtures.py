"""The stack fixtures as a downstream project uses them: a pytest run in a subprocess with the
plugin installed, the real stack behind ``mlx_stack``, ``openai_client`` and ``tier_client``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from stack_helpers import bindable, live_pids

from pytest_mlxstack import skip_no_litellm, skip_no_mlx_backend, skip_no_openai, skip_no_vllm
from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.process.registry import PidRegistry


def needs_real_stack(test: Callable[..., None]) -> Callable[..., None]:
    """Skip unless vllm-mlx, LiteLLM, an MLX backend and openai are all here."""
    for mark in (skip_no_vllm, skip_no_litellm, skip_no_mlx_backend, skip_no_openai):
        test = mark(test)
    return test


DOWNSTREAM = """
import json
import os
from pathlib import Path

import psutil

from pytest_mlxstack.probe_prompts import GREETING


def test_openai_client_reaches_the_fast_tier(openai_client, mlx_stack):
    reply = openai_client.chat.completions.create(
        model="fast", messages=GREETING.messages, temperature=0, max_tokens=16
    )
    assert reply.choices[0].message.content
    Path(os.environ["STACK_REPORT"]).write_text(json.dumps(
        {"pids": [s.pid for s in mlx_stack.services], "ports": mlx_stack.ports}
    ))


def test_tier_client_talks_to_the_tier_directly(tier_client, mlx_stack):
    served = mlx_stack.tier("fast").served_name
    assert [m.id for m in tier_client("fast").models.list()] == [served]


def test_factory_stack_shares_the_pooled_server(mlx_stack_factory, mlx_stack, tier_client):
    custom = mlx_stack_factory({"tiers": {"again": {"model": "tiny-chat"}}, "litellm": False})
    assert custom.tier("again").service.pid == mlx_stack.tier("fast").service.pid
    assert tier_client("again", stack=custom).models.list().data


def home_of(pid):
    return Path(psutil.Process(pid).environ()["HOME"])


def test_unpooled_factory_stack_has_its_own_server_and_home(mlx_stack_factory, mlx_stack):
    # vllm-mlx keeps its prefix cache under ~/.cache/vllm-mlx, so HOME decides who shares it
    own = mlx_stack_factory(
        {"tiers": {"solo": {"model": "tiny-chat"}}, "litellm": False}, pooled=False
    )
    shared = mlx_stack.tier("fast").service
    assert not own.tier("solo").pooled
    assert own.tier("solo").service.pid != shared.pid
    assert home_of(own.tier("solo").service.pid).is_relative_to(own.directory)
    assert not home_of(shared.pid).is_relative_to(own.directory)
    assert not home_of(shared.pid).is_relative_to(mlx_stack.directory)  # the pool's


def test_a_cell_recorded_without_naming_its_row(openai_client, mlx_default_tier, mlx_matrix):
    from pytest_mlxstack import ProbeResult, Verdict

    reply = openai_client.chat.completions.create(
        model=mlx_default_tier, messages=GREETING.messages, temperature=0, max_tokens=16
    )
    verdict = Verdict.PASS if reply.choices[0].message.content else Verdict.FAIL
    result = ProbeResult("greeting", verdict, reason="answered")
    mlx_matrix.record(result)
    mlx_matrix.check(result)
"""

USES_STACK = """
def test_uses_the_stack(openai_client):
    assert [m.id for m in openai_client.models.list()] == ["fast"]
"""

BLOCKER = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mlxhome"
    monkeypatch.setenv("MLXSTACK_HOME", str(path))
    return path


@needs_real_stack
def test_fixtures_serve_a_downstream_test_suite(
    pytester: pytest.Pytester, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "stack.json"
    monkeypatch.setenv("STACK_REPORT", str(report))
    monkeypatch.setenv("MLXSTACK_MATRIX_DIR", str(tmp_path / "matrices"))
    pytester.makepyfile(test_downstream=DOWNSTREAM)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    # a cell recorded with neither model nor route lands in the default tier's row, proxied
    (row,) = load_matrix(tmp_path / "matrices" / "latest.json").rows
    assert (row.model, row.quant) == ("tiny-chat", "bf16")
    assert [(cell.capability, cell.route.value) for cell in row.cells] == [("greeting", "proxied")]
    # one pooled vllm-mlx start for the session, although four tests and two stacks used it
    # (the third, unpooled stack has a server of its own, outside the pool)
    starts = [line for line in result.outlines if re.search(r"\d+ start\(s\)", line)]
    assert len(starts) == 1
    assert re.match(r"tiny-chat:\S+ as tiny-chat: 1 start\(s\)", starts[0])
    # while it works, the run says which model is loading and when it is ready
    result.stdout.fnmatch_lines(
        [
            "mlxstack: loading tiny-chat:* in vllm-mlx (*--tool-call-parser hermes*)",
            "mlxstack: tiny-chat:* ready at http://127.0.0.1:* in * s",
        ]
    )
    # at the end of the session everything is stopped
    used = json.loads(report.read_text())
    assert live_pids(used["pids"]) == []
    assert all(bindable(port) for port in used["ports"])
    assert PidRegistry(home).records() == []


@needs_real_stack
def test_xdist_workers_share_one_server(pytester: pytest.Pytester, home: Path) -> None:
    # --dist each: both workers run every test, so both need the model at the same time
    pytester.makepyfile(test_one=USES_STACK, test_two=USES_STACK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=4)
    starts = [line for line in result.outlines if re.search(r"\d+ start\(s\)", line)]
    assert len(starts) == 1
    assert "1 start(s)" in starts[0]
    assert PidRegistry(home).records() == []
    assert list((home / "pools").iterdir()) == []  # the run's pool directory is gone


def test_broken_stack_file_stops_the_run_with_one_sentence(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", stack="tiers:\n  fast:\n    model: tiny-chat\n    port: 99\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--mlx-stack", "stack.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    stack_file = pytester.path / "stack.yaml"
    result.stderr.fnmatch_lines(
        [f"ERROR: Stack file {stack_file}, field 'tiers.fast.port': 99 is out of range; *."]
    )


def test_stack_file_from_the_ini_is_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    (pytester.path / "conf").mkdir()
    pytester.makeini("[pytest]\nmlx_stack = conf/stack.yaml\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: Stack file {pytester.path / 'conf' / 'stack.yaml'}: does not exist; *"]
    )


@pytest.mark.parametrize(
    ("blocked", "fixture", "install"),
    [
        ("{'vllm_mlx', 'litellm'}", "mlx_stack", "pytest-mlxstack[stack]"),
        ("{'openai'}", "openai_client", "pytest-mlxstack[harness]"),
    ],
)
def test_missing_extra_skips_with_what_to_install(
    pytester: pytest.Pytester,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    blocked: str,
    fixture: str,
    install: str,
) -> None:
    monkeypatch.delenv("MLXSTACK_REQUIRE_STACK", raising=False)  # CI's: here skips are the point
    shim = pytester.mkdir("shim")
    (shim / "sitecustomize.py").write_text(BLOCKER.replace("BLOCKED", blocked))
    monkeypatch.setenv("PYTHONPATH", str(shim))
    pytester.makepyfile(test_x=f"def test_x({fixture}):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    [reason] = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert reason.endswith(f"install it with: pip install '{install}'")
    assert PidRegistry(home).records() == []  # nothing was started only to be skipped
