"""pytest-mlxstack: a pytest plugin and compatibility-matrix library for local LLM stacks.

The library's main objects are importable from here, lazily: ``from pytest_mlxstack import
ServiceManager`` imports the process layer only, never pytest. The skip marks are pytest marks
and are the only names here that load pytest (on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it (the one place each public name lives)
_EXPORTS: dict[str, str] = {
    # errors
    "MlxStackError": "pytest_mlxstack.errors",
    "SettingError": "pytest_mlxstack.settings_values",
    "PortAllocationError": "pytest_mlxstack.process.ports",
    "ServiceStartError": "pytest_mlxstack.process.services",
    "ModelCacheError": "pytest_mlxstack.process.cache",
    "CatalogError": "pytest_mlxstack.catalog.errors",
    "StackError": "pytest_mlxstack.stack.errors",
    "StackSpecError": "pytest_mlxstack.stack.spec",
    "MatrixFormatError": "pytest_mlxstack.matrix.model",
    "MatrixWriteError": "pytest_mlxstack.matrix.store",
    "ExpectationsError": "pytest_mlxstack.matrix.expectations",
    # processes
    "PortAllocator": "pytest_mlxstack.process.ports",
    "ServiceManager": "pytest_mlxstack.process.services",
    "ManagedService": "pytest_mlxstack.process.services",
    "ModelCache": "pytest_mlxstack.process.cache",
    # catalog
    "Catalog": "pytest_mlxstack.catalog.loading",
    "CatalogEntry": "pytest_mlxstack.catalog.schema",
    "load_catalog": "pytest_mlxstack.catalog.loading",
    # stack
    "StackSpec": "pytest_mlxstack.stack.spec",
    "TierSpec": "pytest_mlxstack.stack.spec",
    "load_stack_file": "pytest_mlxstack.stack.spec",
    "Stack": "pytest_mlxstack.stack.runtime",
    "start_stack": "pytest_mlxstack.stack.runtime",
    "ServerPool": "pytest_mlxstack.stack.pool",
    # probes and verdicts
    "run_probe": "pytest_mlxstack.probes.registry",
    "ProbeResult": "pytest_mlxstack.matrix.verdicts",
    "Verdict": "pytest_mlxstack.matrix.verdicts",
    "Attribution": "pytest_mlxstack.matrix.verdicts",
    "Route": "pytest_mlxstack.matrix.verdicts",
    "Evidence": "pytest_mlxstack.matrix.verdicts",
    # the matrix
    "Matrix": "pytest_mlxstack.matrix.model",
    "load_matrix": "pytest_mlxstack.matrix.model",
    "write_matrix": "pytest_mlxstack.matrix.store",
    "render_html": "pytest_mlxstack.matrix.html",
    "merge_matrices": "pytest_mlxstack.matrix.merge",
    "diff_matrices": "pytest_mlxstack.matrix.diff",
    "MatrixRecorder": "pytest_mlxstack.matrix.recorder",
    # skip marks (pytest)
    "skip_not_darwin": "pytest_mlxstack.wiring.skips",
    "skip_no_vllm": "pytest_mlxstack.wiring.skips",
    "skip_no_litellm": "pytest_mlxstack.wiring.skips",
    "skip_no_openai": "pytest_mlxstack.wiring.skips",
    "skip_no_mlx_backend": "pytest_mlxstack.wiring.skips",
    "skip_insufficient_memory": "pytest_mlxstack.wiring.skips",
    "check_memory_or_skip": "pytest_mlxstack.wiring.skips",
}

_EXTRA_OF = {"openai": "harness", "vllm_mlx": "stack", "litellm": "stack", "mlx": "stack"}

__all__ = [
    "Attribution",
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "Evidence",
    "ExpectationsError",
    "ManagedService",
    "Matrix",
    "MatrixFormatError",
    "MatrixRecorder",
    "MatrixWriteError",
    "MlxStackError",
    "ModelCache",
    "ModelCacheError",
    "PortAllocationError",
    "PortAllocator",
    "ProbeResult",
    "Route",
    "ServerPool",
    "ServiceManager",
    "ServiceStartError",
    "SettingError",
    "Stack",
    "StackError",
    "StackSpec",
    "StackSpecError",
    "TierSpec",
    "Verdict",
    "__version__",
    "check_memory_or_skip",
    "diff_matrices",
    "load_catalog",
    "load_matrix",
    "load_stack_file",
    "merge_matrices",
    "render_html",
    "run_probe",
    "skip_insufficient_memory",
    "skip_no_litellm",
    "skip_no_mlx_backend",
    "skip_no_openai",
    "skip_no_vllm",
    "skip_not_darwin",
    "start_stack",
    "write_matrix",
]

if TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs see
    from pytest_mlxstack.catalog.errors import CatalogError
    from pytest_mlxstack.catalog.loading import Catalog, load_catalog
    from pytest_mlxstack.catalog.schema import CatalogEntry
    from pytest_mlxstack.errors import MlxStackError
    from pytest_mlxstack.matrix.diff import diff_matrices
    from pytest_mlxstack.matrix.expectations import ExpectationsError
    from pytest_mlxstack.matrix.html import render_html
    from pytest_mlxstack.matrix.merge import merge_matrices
    from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, load_matrix
    from pytest_mlxstack.matrix.recorder import MatrixRecorder
    from pytest_mlxstack.matrix.store import MatrixWriteError, write_matrix
    from pytest_mlxstack.matrix.verdicts import Attribution, Evidence, ProbeResult, Route, Verdict
    from pytest_mlxstack.probes.registry import run_probe
    from pytest_mlxstack.process.cache import ModelCache, ModelCacheError
    from pytest_mlxstack.process.ports import PortAllocationError, PortAllocator
    from pytest_mlxstack.process.services import ManagedService, ServiceManager, ServiceStartError
    from pytest_mlxstack.settings_values import SettingError
    from pytest_mlxstack.stack.errors import StackError
    from pytest_mlxstack.stack.pool import ServerPool
    from pytest_mlxstack.stack.runtime import Stack, start_stack
    from pytest_mlxstack.stack.spec import StackSpec, StackSpecError, TierSpec, load_stack_file
    from pytest_mlxstack.wiring.skips import (
        check_memory_or_skip,
        skip_insufficient_memory,
        skip_no_litellm,
        skip_no_mlx_backend,
        skip_no_openai,
        skip_no_vllm,
        skip_not_darwin,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_mlxstack' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:  # a name that needs an extra (run_probe: openai)
        extra = _EXTRA_OF.get(str(exc.name), "stack,harness")
        raise ModuleNotFoundError(
            f"pytest_mlxstack.{name} needs {exc.name}, which is not installed; install it with: "
            f"pip install 'pytest-mlxstack[{extra}]'",
            name=exc.name,
        ) from exc
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
