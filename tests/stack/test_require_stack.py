"""``--mlx-require-stack`` (option, ini key, MLXSTACK_REQUIRE_STACK): a skip because the real
stack is missing fails instead, for downstream CI; other skips stay skips.

The inner runs make vllm-mlx really unimportable (a sitecustomize on PYTHONPATH, as an
environment without the stack extra)."""

from __future__ import annotations

import pytest

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
    pytester.makepyfile(test_inner=INNER)
    return pytester


@pytest.mark.parametrize("how", ["option", "ini", "env"])
def test_required_stack_turns_a_missing_stack_skip_into_a_failure(
    without_vllm: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.delenv("MLXSTACK_REQUIRE_STACK", raising=False)
    args = ["-p", "no:cacheprovider"]
    if how == "option":
        args.append("--mlx-require-stack")
    elif how == "ini":
        without_vllm.makeini("[pytest]\nmlx_require_stack = true\n")
    else:
        monkeypatch.setenv("MLXSTACK_REQUIRE_STACK", "1")

    result = without_vllm.runpytest_subprocess(*args)

    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*--mlx-require-stack (or MLXSTACK_REQUIRE_STACK=1) is set, but this test was "
            "skipped because the real stack is missing: vllm-mlx is not installed*"
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
