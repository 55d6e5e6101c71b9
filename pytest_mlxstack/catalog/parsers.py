"""Which tool-call and reasoning parser names vllm-mlx accepts.

The installed vllm-mlx is the authority, but importing it pulls in transformers (about a second,
more on a cold disk), so its registries are read from its source files with ``ast`` instead of
being imported. Without vllm-mlx installed (a catalog-only CI job), a built-in list taken from
vllm-mlx 0.6.0 is used.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

# vllm-mlx 0.6.0: ``ToolParserManager.register_module(...)`` in vllm_mlx/tool_parsers/*.py.
FALLBACK_TOOL_PARSERS = frozenset(
    {
        "auto", "generic", "deepseek", "deepseek_r1", "deepseek_v3", "deepseek_v4", "dsml",
        "functionary", "meetkai", "gemma4", "glm4", "glm47", "gpt-oss", "harmony", "granite",
        "granite3", "hermes", "nous", "kimi", "kimi_k2", "moonshot", "llama", "llama3", "llama4",
        "minimax", "minimax_m2", "mistral", "nemotron", "nemotron3", "poolside_v1", "qwen",
        "qwen3", "qwen3.5", "qwen3_coder", "qwen3_xml", "step", "step3p5", "xlam",
    }
)  # fmt: skip
# vllm-mlx 0.6.0: ``register_parser(...)`` in vllm_mlx/reasoning/__init__.py.
FALLBACK_REASONING_PARSERS = frozenset(
    {
        "qwen3", "deepseek_r1", "deepseek_v4", "gpt_oss", "harmony", "gemma4", "glm4",
        "mistral", "poolside_v1", "step3p5",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ParserRegistry:
    """The accepted parser names and where they came from (shown in error messages)."""

    tool_parsers: frozenset[str]
    reasoning_parsers: frozenset[str]
    origin: str


def _string_args(node: ast.expr) -> list[str]:
    """The string constants in ``"a"`` or ``["a", "b"]``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            n.value for n in node.elts if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
    return []


def _registered_names(files: list[Path], function: str) -> set[str]:
    """First arguments of every call to ``function`` (a name or attribute) in ``files``."""
    names: set[str] = set()
    for file in files:
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == function:
                names.update(_string_args(node.args[0]))
    return names


def _installed_package_dir() -> Path | None:
    """vllm-mlx's package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("vllm_mlx")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def parser_registry() -> ParserRegistry:
    """The installed vllm-mlx's parser names, else the built-in 0.6.0 list."""
    package = _installed_package_dir()
    if package is not None:
        tools = _registered_names(
            sorted((package / "tool_parsers").glob("*.py")), "register_module"
        )
        reasoning = _registered_names(
            sorted((package / "reasoning").glob("*.py")), "register_parser"
        )
        if tools and reasoning:
            try:
                version = importlib.metadata.version("vllm-mlx")
            except importlib.metadata.PackageNotFoundError:
                version = "unknown version"
            return ParserRegistry(
                frozenset(tools), frozenset(reasoning), f"the installed vllm-mlx {version}"
            )
    return ParserRegistry(
        FALLBACK_TOOL_PARSERS, FALLBACK_REASONING_PARSERS, "vllm-mlx 0.6.0 (built-in list)"
    )
