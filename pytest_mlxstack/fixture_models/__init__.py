"""The tiny trained fixture models shipped with the package, and their catalog.

Four variants of one 2-layer ``qwen2`` model (same tokenizer, same chat template, same build,
see ``scripts/build_fixture_models.py``): ``tiny-chat`` answers every built-in probe exactly
through vllm-mlx, and three negative controls each break one capability on purpose. They let
tiers 2 to 4 run for real on any machine, without the Hugging Face Hub.
"""

from __future__ import annotations

from pathlib import Path

from pytest_mlxstack.fixture_models.variants import VARIANTS, Variant

__all__ = ["VARIANTS", "Variant", "fixture_catalog_path", "fixture_model_path"]

_HERE = Path(__file__).resolve().parent


def fixture_model_path(variant: str = "tiny-chat") -> Path:
    """The model folder of ``variant``, ready for ``vllm-mlx serve``."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown fixture model '{variant}'; use one of {', '.join(VARIANTS)}")
    return _HERE / variant


def fixture_catalog_path() -> Path:
    """A catalog folder with one entry (a local source) per variant."""
    return _HERE / "catalog"
