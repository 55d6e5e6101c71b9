"""The LiteLLM proxy's config file and environment for one stack.

One route per tier: ``model_name`` is the tier name clients ask for, the backend is the tier's
vllm-mlx server through LiteLLM's OpenAI-compatible provider. Retries are off (a failure must
reach the test as it happened, not be retried into a pass) and timeouts are set, so a wedged
backend fails a test instead of hanging it. The master key is not in the file: LiteLLM reads it
from ``LITELLM_MASTER_KEY``, so the file holds nothing secret (the backend key is a dummy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_mlxstack.process.atomic import write_text_atomic

BACKEND_KEY = "dummy"  # vllm-mlx runs without --api-key on loopback; LiteLLM wants some key


@dataclass(frozen=True)
class ProxyRoute:
    """Tier ``tier`` served by the vllm-mlx at ``port`` under ``served_name``."""

    tier: str
    served_name: str
    port: int

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def litellm_config(routes: Sequence[ProxyRoute], *, request_timeout: float) -> dict[str, Any]:
    """The config mapping: model list, no retries, request timeouts."""
    return {
        "model_list": [
            {
                "model_name": route.tier,
                "litellm_params": {
                    "model": f"openai/{route.served_name}",
                    "api_base": route.api_base,
                    "api_key": BACKEND_KEY,
                    "timeout": request_timeout,
                    "stream_timeout": request_timeout,
                    "max_retries": 0,
                },
            }
            for route in routes
        ],
        "litellm_settings": {
            "num_retries": 0,
            "request_timeout": request_timeout,
            "drop_params": False,
        },
        # No cooldowns: after a few failed requests (a probe's 404 or 500) LiteLLM would take a
        # tier's only deployment out of rotation and answer every later request 429 "No
        # deployments available", so one probe's verdict would depend on the ones before it.
        "router_settings": {
            "num_retries": 0,
            "timeout": request_timeout,
            "disable_cooldowns": True,
        },
    }


def write_litellm_config(
    path: Path, routes: Sequence[ProxyRoute], *, request_timeout: float
) -> Path:
    """Write the config atomically (a half-written config would start a proxy missing tiers)."""
    text = yaml.safe_dump(litellm_config(routes, request_timeout=request_timeout), sort_keys=False)
    write_text_atomic(path, text)
    return path


def litellm_env(home: Path) -> dict[str, str]:
    """The proxy's environment besides the key (which ``ServiceManager.start_litellm`` sets):
    the bundled cost map (no download at import) and an isolated HOME."""
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HOME": str(home),
    }
