"""Real ``openai.OpenAI`` clients for a running stack (the ``harness`` extra).

No retries (a failure must show as it happened) and a bounded timeout (a wedged server fails
the caller instead of hanging it). ``openai`` is imported on use, so the rest of the stack
package works without the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_mlxstack.stack.runtime import Stack

if TYPE_CHECKING:
    from openai import OpenAI

CLIENT_TIMEOUT_S = 120.0
UNUSED_KEY = "unused"  # vllm-mlx runs without a key, on loopback only


def proxy_client(stack: Stack, *, timeout: float = CLIENT_TIMEOUT_S) -> OpenAI:
    """A client for LiteLLM with the stack's master key; ``model=`` is a tier name."""
    from openai import OpenAI

    return OpenAI(
        base_url=stack.proxy_url,
        api_key=stack.master_key.reveal(),
        max_retries=0,
        timeout=timeout,
    )


def tier_client(stack: Stack, tier: str, *, timeout: float = CLIENT_TIMEOUT_S) -> OpenAI:
    """A client for one tier's vllm-mlx, bypassing LiteLLM; ``model=`` is the served name
    (``stack.tier(tier).served_name``)."""
    from openai import OpenAI

    return OpenAI(base_url=stack.tier_url(tier), api_key=UNUSED_KEY, max_retries=0, timeout=timeout)
