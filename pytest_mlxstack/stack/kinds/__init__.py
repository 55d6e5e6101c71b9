"""Managed server kinds: one module per server program (see ``base.ServerKind``).

Add a kind by writing its module and listing an instance in ``KINDS``; the stack spec, the
pool, model resolution and the CLI all take their choices from here.
"""

from __future__ import annotations

from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.kinds.base import Launch, ServerKey, ServerKind
from pytest_mlxstack.stack.kinds.llama_cpp import LlamaCpp
from pytest_mlxstack.stack.kinds.mlx_lm import MlxLm
from pytest_mlxstack.stack.kinds.vllm_mlx import VllmMlx

DEFAULT_KIND = "vllm-mlx"
LLAMA_CPP = LlamaCpp()
KINDS: dict[str, ServerKind] = {kind.name: kind for kind in (VllmMlx(), MlxLm(), LLAMA_CPP)}
KIND_NAMES = tuple(KINDS)


def get_kind(name: str) -> ServerKind:
    """The kind called ``name``; one ``StackError`` sentence naming the known ones if none."""
    try:
        return KINDS[name]
    except KeyError:
        raise StackError(
            f"'{name}' is not a server kind pytest-mlxstack can start; use one of "
            f"{', '.join(KIND_NAMES)}"
        ) from None


__all__ = [
    "DEFAULT_KIND",
    "KINDS",
    "KIND_NAMES",
    "LLAMA_CPP",
    "Launch",
    "ServerKey",
    "ServerKind",
    "get_kind",
]
