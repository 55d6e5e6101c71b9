"""Skip marks for tests that need parts of the real stack, each saying what is missing and how
to get it.

The conditions are cheap (``importlib.util.find_spec``, ``psutil``) and evaluated lazily, on
first use of each mark, so importing one mark never imports MLX. On Linux with ``mlx[cpu]``
installed the real stack runs, so nothing here skips merely for not being on a Mac.
"""

from __future__ import annotations

import math
import platform
import sys
from typing import Any

import psutil
import pytest

from pytest_mlxstack.stack.requirements import (
    HARNESS_HINT,
    LITELLM_PROXY_MODULES,
    STACK_HINT,
    installed,
    missing,
    mlx_backend_problem,
)

__all__ = [
    "check_memory_or_skip",
    "skip_insufficient_memory",
    "skip_no_litellm",
    "skip_no_mlx_backend",
    "skip_no_openai",
    "skip_no_vllm",
    "skip_not_darwin",
]


def _memory_gib(kind: str) -> float:
    memory = psutil.virtual_memory()
    value = memory.total if kind == "total" else memory.available
    return float(value) / 2**30


def _checked_gib(min_gb: object, what: str) -> float:
    """``min_gb`` as a positive number of GiB, or one sentence saying what to pass instead."""
    if isinstance(min_gb, bool) or not isinstance(min_gb, (int, float)):
        raise TypeError(
            f"{what} takes a number of GiB, got {type(min_gb).__name__} {min_gb!r}; "
            f"write it as a number, such as {what}(8)"
        )
    if not math.isfinite(min_gb) or min_gb <= 0:
        raise ValueError(
            f"{what} takes a positive number of GiB, got {min_gb!r}; write it as a positive "
            f"number, such as {what}(8)"
        )
    return float(min_gb)


def skip_insufficient_memory(min_gb: float) -> pytest.MarkDecorator:
    """Skip unless the machine has at least ``min_gb`` GiB of RAM in total."""
    min_gb = _checked_gib(min_gb, "skip_insufficient_memory")
    total = _memory_gib("total")
    return pytest.mark.skipif(
        total < min_gb,
        reason=(
            f"needs {min_gb:g} GiB of RAM, this machine has {total:.1f} GiB; run it on a "
            "machine with more memory or pick a smaller model"
        ),
    )


def check_memory_or_skip(min_gb: float) -> None:
    """Skip the running test unless ``min_gb`` GiB of RAM are available right now."""
    min_gb = _checked_gib(min_gb, "check_memory_or_skip")
    available = _memory_gib("available")
    if available < min_gb:
        pytest.skip(
            f"needs {min_gb:g} GiB of free RAM, only {available:.1f} GiB are available; "
            "close other programs, stop other servers or pick a smaller model"
        )


def _skip_not_darwin() -> pytest.MarkDecorator:
    # Metal MLX needs Apple Silicon: an Intel Mac is macOS but cannot run it.
    return pytest.mark.skipif(
        sys.platform != "darwin" or platform.machine() != "arm64",
        reason=(
            f"needs macOS on Apple Silicon (Metal); this is {sys.platform} "
            f"{platform.machine()}; run it on an Apple Silicon Mac, or use skip_no_mlx_backend "
            "instead to run it on Linux with mlx[cpu]"
        ),
    )


def _skip_no_vllm() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not installed("vllm_mlx"), reason=f"vllm-mlx is not installed; {STACK_HINT}"
    )


def _skip_no_litellm() -> pytest.MarkDecorator:
    absent = missing(LITELLM_PROXY_MODULES)
    return pytest.mark.skipif(
        bool(absent),
        reason=(f"the LiteLLM proxy is not installed (missing: {', '.join(absent)}); {STACK_HINT}"),
    )


def _skip_no_openai() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not installed("openai"), reason=f"the openai client is not installed; {HARNESS_HINT}"
    )


def _skip_no_mlx_backend() -> pytest.MarkDecorator:
    problem = mlx_backend_problem()
    return pytest.mark.skipif(problem is not None, reason=problem or "")


STACK_MARKS = ("skip_no_vllm", "skip_no_litellm", "skip_no_mlx_backend", "skip_no_openai")


def missing_stack_reasons() -> set[str]:
    """The reasons of the stack skip marks that hold here (empty: the whole stack is there).
    The stack fixtures skip with these very reasons."""
    reasons = set()
    for name in STACK_MARKS:
        mark = __getattr__(name).mark
        if mark.args[0]:
            reasons.add(str(mark.kwargs["reason"]))
    return reasons


_LAZY_MARKS = {
    "skip_not_darwin": _skip_not_darwin,
    "skip_no_vllm": _skip_no_vllm,
    "skip_no_litellm": _skip_no_litellm,
    "skip_no_openai": _skip_no_openai,
    "skip_no_mlx_backend": _skip_no_mlx_backend,
}
_cache: dict[str, pytest.MarkDecorator] = {}

# Declared for type checkers; the values are built on first access by ``__getattr__``.
skip_not_darwin: pytest.MarkDecorator
skip_no_vllm: pytest.MarkDecorator
skip_no_litellm: pytest.MarkDecorator
skip_no_openai: pytest.MarkDecorator
skip_no_mlx_backend: pytest.MarkDecorator


def __getattr__(name: str) -> Any:
    factory = _LAZY_MARKS.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _cache:
        _cache[name] = factory()
    return _cache[name]
