"""tests/conftest.py's guard: with MLXSTACK_REQUIRE_STACK=1 a skip for a missing stack fails.

The inner runs load that very conftest and make vllm-mlx really unimportable (a
sitecustomize on PYTHONPATH, as an environment without the stack extra)."""

from __future__ import annotations

from pathlib import Path

import pytest

GUARD = Path(__file__).parents[1] / "conftest.py"
BLOCK_VLLM = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "vllm_mlx":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""
INNER = """
import pytest

from pytest_mlxstack import skip_no_vllm


@skip_no_vllm
def test_needs_the_stack():
    pass


@pytest.mark.skip(reason="nothing to do with the stack")
def test_skipped_for_another_reason():
    pass


def test_plain():
    pass
"""


@pytest.fixture
def without_vllm(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    shim = pytester.mkdir("shim")
    (shim / "sitecustomize.py").write_text(BLOCK_VLLM)
    monkeypatch.setenv("PYTHONPATH", str(shim))
    pytester.makeconftest(GUARD.read_text(encoding="utf-8"))
    pytester.makepyfile(test_inner=INNER)
    return pytester


def test_required_stack_turns_a_missing_stack_skip_into_a_failure(
    without_vllm: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXSTACK_REQUIRE_STACK", "1")
    result = without_vllm.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "MLXSTACK_REQUIRE_STACK=1 but this test was skipped because the real stack is "
            "missing: vllm-mlx is not installed*"
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_without_the_requirement_a_missing_stack_is_a_skip(
    without_vllm: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLXSTACK_REQUIRE_STACK", raising=False)
    result = without_vllm.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.OK
