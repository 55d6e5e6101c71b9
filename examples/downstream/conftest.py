"""Fixtures of this repository. The stack itself (tiers, catalog) is chosen in pyproject.toml
(`mlx_stack = "stack.yaml"`), so every test here talks to the same session stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_mlxstack.stack import load_stack_file

STACK_FILE = Path(__file__).parent / "stack.yaml"


@dataclass(frozen=True)
class FastTier:
    """What a matrix cell needs about the `fast` tier: its catalog row (model id and
    quantization) and the name vllm-mlx serves the model under."""

    model: str
    quant: str
    served_name: str


@pytest.fixture(scope="session")
def fast_tier(mlx_stack) -> FastTier:
    # Read from stack.yaml and the running stack, so a changed stack.yaml needs no change here.
    spec = next(tier for tier in load_stack_file(STACK_FILE).tiers if tier.name == "fast")
    assert spec.model is not None, "the fast tier of stack.yaml names a catalog model"
    return FastTier(
        model=spec.model,
        quant=spec.quant or "bf16",
        served_name=mlx_stack.tier("fast").served_name,
    )
