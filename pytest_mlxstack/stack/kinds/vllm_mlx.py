"""vllm-mlx (``vllm-mlx serve``): the default kind, with parser flags from the catalog entry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_mlxstack.catalog.parsers import parser_registry
from pytest_mlxstack.process.ports import LOOPBACK
from pytest_mlxstack.process.services import find_script
from pytest_mlxstack.stack.flags import ParserChoice, check_extra_flags, vllm_serve_args
from pytest_mlxstack.stack.kinds.base import Launch, ServerKey, ServerKind, offline_home_env


class VllmMlx(ServerKind):
    name = "vllm-mlx"
    health_path = "/health"
    distribution = "vllm-mlx"

    def serve_args(
        self,
        parsers: ParserChoice,
        *,
        continuous_batching: bool = False,
        paged_cache: bool = False,
        extra: Sequence[str] = (),
    ) -> tuple[str, ...]:
        return vllm_serve_args(
            parsers=parsers,
            continuous_batching=continuous_batching,
            paged_cache=paged_cache,
            extra=extra,
        )

    def check_flags(
        self, flags: Sequence[str], *, continuous_batching: bool, paged_cache: bool
    ) -> None:
        check_extra_flags(flags, continuous_batching=continuous_batching)

    def parser_problem(self, parsers: ParserChoice) -> str | None:
        registry = parser_registry()
        if parsers.tool_call_parser and parsers.tool_call_parser not in registry.tool_parsers:
            return f"'{parsers.tool_call_parser}' is not a tool-call parser of {registry.origin}"
        if parsers.reasoning_parser and parsers.reasoning_parser not in registry.reasoning_parsers:
            return f"'{parsers.reasoning_parser}' is not a reasoning parser of {registry.origin}"
        return None

    def launch(self, key: ServerKey, home: Path) -> Launch:
        """Concurrent requests queue: vllm-mlx's SimpleEngine otherwise answers one that
        arrives while another is generating with 503 ``text_generation_busy``; HOME holds its
        prefix cache."""
        argv = [find_script("vllm-mlx"), "serve", str(key.model), "--host", LOOPBACK]
        argv += ["--port", "{port}", "--served-model-name", key.served_name, *key.args]
        env = {**offline_home_env(home), "VLLM_MLX_SIMPLE_ENGINE_LOCK_ADMISSION": "wait"}
        return Launch(tuple(argv), self.health_path, env)
