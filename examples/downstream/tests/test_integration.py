"""Tier 3, our way: the same tier through the LiteLLM proxy, addressed by its tier name."""

from __future__ import annotations

import pytest

from pytest_mlxstack.matrix.verdicts import Route
from pytest_mlxstack.probes import probe_model_listing, probe_streaming


@pytest.mark.integration
def test_proxy_lists_the_fast_tier(openai_client, fast_tier, mlx_matrix):
    result = probe_model_listing(openai_client, "fast")
    mlx_matrix.record(result, model=fast_tier.model, quant=fast_tier.quant, route=Route.PROXIED)
    mlx_matrix.check(result)


@pytest.mark.integration
def test_proxy_streams(openai_client, fast_tier, mlx_matrix):
    result = probe_streaming(openai_client, "fast")
    mlx_matrix.record(result, model=fast_tier.model, quant=fast_tier.quant, route=Route.PROXIED)
    mlx_matrix.check(result)
