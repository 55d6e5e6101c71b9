"""Stacks: vllm-mlx tiers behind a LiteLLM proxy, described by a spec and started for real.

``StackSpec``/``TierSpec`` describe a stack (``load_stack_file`` reads one from YAML);
``start_stack`` brings it up through a ``ServiceManager`` and returns a ``Stack``; a
``ServerPool`` shares one vllm-mlx per (model, flags) between stacks of a session.
"""

from __future__ import annotations

from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.flags import BATCHING_ONLY_FLAGS, ParserChoice, vllm_serve_args
from pytest_mlxstack.stack.masterkey import MasterKey
from pytest_mlxstack.stack.models import ResolvedModel, load_catalogs, resolve_tier
from pytest_mlxstack.stack.pool import PoolStart, ServerPool
from pytest_mlxstack.stack.proxy_config import ProxyRoute, litellm_config
from pytest_mlxstack.stack.runtime import Stack, start_stack
from pytest_mlxstack.stack.servers import TierServer
from pytest_mlxstack.stack.spec import (
    LiteLLMSpec,
    StackSpec,
    StackSpecError,
    TierSpec,
    default_stack_spec,
    load_stack_file,
    stack_spec_for_models,
)

__all__ = [
    "BATCHING_ONLY_FLAGS",
    "LiteLLMSpec",
    "MasterKey",
    "ParserChoice",
    "PoolStart",
    "ProxyRoute",
    "ResolvedModel",
    "ServerPool",
    "Stack",
    "StackError",
    "StackSpec",
    "StackSpecError",
    "TierServer",
    "TierSpec",
    "default_stack_spec",
    "litellm_config",
    "load_catalogs",
    "load_stack_file",
    "resolve_tier",
    "stack_spec_for_models",
    "start_stack",
    "vllm_serve_args",
]
