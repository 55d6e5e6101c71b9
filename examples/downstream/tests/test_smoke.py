"""Tier 2, our way: the `fast` tier's vllm-mlx, straight (no proxy)."""

from __future__ import annotations

import pytest

from pytest_mlxstack.matrix.verdicts import Route
from pytest_mlxstack.probes import probe_inference, probe_tool_calling


@pytest.mark.smoke
def test_fast_tier_answers(tier_client, fast_tier, mlx_matrix):
    result = probe_inference(tier_client("fast"), fast_tier.served_name)
    mlx_matrix.record(result, model=fast_tier.model, quant=fast_tier.quant, route=Route.DIRECT)
    mlx_matrix.check(result)


@pytest.mark.smoke
def test_fast_tier_calls_tools(tier_client, fast_tier, mlx_matrix):
    result = probe_tool_calling(tier_client("fast"), fast_tier.served_name)
    mlx_matrix.record(result, model=fast_tier.model, quant=fast_tier.quant, route=Route.DIRECT)
    mlx_matrix.check(result)
