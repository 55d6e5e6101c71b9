"""The plugin's own tests.

With ``MLXSTACK_REQUIRE_STACK=1`` (CI on Linux sets it: scripts/run-tests.sh, ci.yml) a test
skipped because the real stack is missing fails instead, so CI cannot go green with every
real-stack test skipped. "Missing" means: skipped with the reason of one of the stack skip
marks of ``pytest_mlxstack.wiring.skips`` (vllm-mlx, the LiteLLM proxy, an MLX backend,
openai) whose condition holds here; the stack fixtures skip with the same reasons. Other
skips stay skips.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pytest_mlxstack.wiring import skips

REQUIRE_STACK = "MLXSTACK_REQUIRE_STACK"
STACK_MARKS = ("skip_no_vllm", "skip_no_litellm", "skip_no_mlx_backend", "skip_no_openai")


def missing_stack_reasons() -> set[str]:
    """The reasons of the stack skip marks that apply on this machine (empty: all there)."""
    reasons = set()
    for name in STACK_MARKS:
        mark = getattr(skips, name).mark
        if mark.args[0]:
            reasons.add(str(mark.kwargs["reason"]))
    return reasons


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    xfail = hasattr(report, "wasxfail")
    if report.skipped and not xfail and os.environ.get(REQUIRE_STACK) == "1":
        longrepr = report.longrepr
        reason = longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else ""
        if reason in missing_stack_reasons():
            report.outcome = "failed"
            report.longrepr = (
                f"{REQUIRE_STACK}=1 but this test was skipped because the real stack is "
                f"missing: {reason}"
            )
    return report
