"""mlx_lm.server (``python -m mlx_lm server``), which ships with mlx-lm.

It takes no parser flags: it picks its tool parser from the model's chat template and its
reasoning markers from the vocabulary. So a catalog parser name is accepted only when it names
a format mlx-lm recognises by itself (``TOOL_PARSERS``, ``REASONING_PARSERS``, read from
mlx-lm 0.31.3's ``tokenizer_utils``). It has no served-name flag either: a request's ``model``
must be the folder it was started with, so it is started in a folder of its own where the
served name is a symlink to the model, and given that relative name.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_mlxstack.process.ports import LOOPBACK
from pytest_mlxstack.stack.flags import FlagError, ParserChoice, flag_name
from pytest_mlxstack.stack.kinds.base import Launch, ServerKey, ServerKind, offline_home_env

# vllm-mlx parser name -> the mlx-lm tool parser its chat template selects.
TOOL_PARSERS = {
    "hermes": "json_tools",
    "nous": "json_tools",
    "qwen": "json_tools",
    "qwen3": "json_tools",
    "qwen3_coder": "qwen3_coder",
    "glm47": "glm47",
    "kimi_k2": "kimi_k2",
    "minimax_m2": "minimax_m2",
    "mistral": "mistral",
    "gemma4": "gemma4",
}
# Parsers of ``<think>...</think>`` style reasoning, which mlx-lm finds in the vocabulary.
REASONING_PARSERS = frozenset({"qwen3", "deepseek_r1", "gemma4"})

MANAGED_FLAGS = {
    "--host": "every service binds 127.0.0.1",
    "--port": "set the tier's port instead",
    "--model": "set the tier's model or path instead",
}
MODELS_DIR = "models"
HUB_CACHE = ".cache/huggingface/hub"


class MlxLm(ServerKind):
    name = "mlx-lm"
    health_path = "/health"
    distribution = "mlx-lm"

    def serve_args(
        self,
        parsers: ParserChoice,
        *,
        continuous_batching: bool = False,
        paged_cache: bool = False,
        extra: Sequence[str] = (),
    ) -> tuple[str, ...]:
        self.check_flags(extra, continuous_batching=continuous_batching, paged_cache=paged_cache)
        return tuple(extra)

    def check_flags(
        self, flags: Sequence[str], *, continuous_batching: bool, paged_cache: bool
    ) -> None:
        if continuous_batching or paged_cache:
            which = "continuous_batching" if continuous_batching else "paged_cache"
            raise FlagError(
                f"sets {which}, a vllm-mlx setting that mlx_lm.server does not have",
                f"remove {which} or use kind: vllm-mlx",
            )
        for argument in flags:
            name = flag_name(argument)
            if name in MANAGED_FLAGS:
                raise FlagError(f"sets {name}, which pytest-mlxstack manages", MANAGED_FLAGS[name])

    def parser_problem(self, parsers: ParserChoice) -> str | None:
        tool, reasoning = parsers.tool_call_parser, parsers.reasoning_parser
        if tool is not None and tool not in TOOL_PARSERS:
            return (
                f"tool-call parser '{tool}' is not a format mlx_lm.server recognises "
                f"(it knows {', '.join(sorted(TOOL_PARSERS))})"
            )
        if reasoning is not None and reasoning not in REASONING_PARSERS:
            return (
                f"reasoning parser '{reasoning}' is not a format mlx_lm.server recognises "
                f"(it knows {', '.join(sorted(REASONING_PARSERS))})"
            )
        return None

    def launch(self, key: ServerKey, home: Path) -> Launch:
        """mlx-lm 0.31.3's ``/v1/models`` scans the Hub cache and, when that folder does not
        exist, fails after sending 200 with an empty body: so the folder is made first."""
        env = offline_home_env(home)
        (home / HUB_CACHE).mkdir(parents=True, exist_ok=True)
        models = home / MODELS_DIR
        link = models / key.served_name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(key.model, target_is_directory=True)
        argv = [sys.executable, "-m", "mlx_lm", "server", "--model", key.served_name]
        argv += ["--host", LOOPBACK, "--port", "{port}", *key.args]
        return Launch(tuple(argv), self.health_path, env, cwd=models)
