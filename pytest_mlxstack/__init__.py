"""pytest-mlxstack: a pytest plugin and compatibility-matrix library for local LLM stacks.

The library modules (``ports``, ``services``, ``cache``, ``catalog``, ``stack``, ``probes``,
``matrix``) import without pytest. The skip helpers are pytest marks, so they are loaded lazily
here: ``import pytest_mlxstack.process.services`` never pulls pytest in.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_SKIP_EXPORTS = frozenset(
    {
        "skip_not_darwin",
        "skip_no_vllm",
        "skip_no_litellm",
        "skip_no_openai",
        "skip_no_mlx_backend",
        "skip_insufficient_memory",
        "check_memory_or_skip",
    }
)

__all__ = ["__version__", *sorted(_SKIP_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _SKIP_EXPORTS:
        from pytest_mlxstack.wiring import skips

        return getattr(skips, name)
    raise AttributeError(f"module 'pytest_mlxstack' has no attribute {name!r}")
