"""How many model servers may load at once: as many as fit in the memory available now.

The rule (docs/stack.md): each model is expected to take the larger of its catalog entry's
peak memory for that quantization (``benchmarks.*.memory_gb``) and its weights on disk plus
``SERVER_OVERHEAD_GB`` (a vllm-mlx serving a 1 MB model holds 0.34 GB: the Python runtime,
mlx and torch). The budget is ``HEADROOM`` of the memory the system reports available, less
``PROXY_GB`` for LiteLLM, which starts at the same time. The limit is the number of the largest
models that fit in the budget together, at least one (a single model too large is still
tried, as before: its start reports the failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import psutil

from pytest_mlxstack.stack.models import ResolvedModel

SERVER_OVERHEAD_GB = 0.4
PROXY_GB = 0.6  # LiteLLM's resident memory once ready, rounded up (0.45 GB measured)
HEADROOM = 0.8
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".npz")


def expected_gb(model: ResolvedModel) -> float:
    """What serving ``model`` is expected to hold in memory, in GB."""
    return max(model.memory_gb or 0.0, weights_gb(model.path) + SERVER_OVERHEAD_GB)


def weights_gb(folder: Path) -> float:
    """The size of the weight files in a model folder, in GB (1e9 bytes)."""
    try:
        files = [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()]
        return sum(p.stat().st_size for p in files) / 1e9
    except OSError:
        return 0.0


def available_gb() -> float:
    return float(psutil.virtual_memory().available) / 1e9


def start_limit(models: Sequence[ResolvedModel], available: float | None = None) -> int:
    """How many of ``models`` may load at once (see the module doc); at least 1."""
    budget = (available_gb() if available is None else available) * HEADROOM - PROXY_GB
    count, total = 0, 0.0
    for need in sorted((expected_gb(model) for model in models), reverse=True):
        if total + need > budget:
            break
        total += need
        count += 1
    return max(1, count)
