"""The vllm-mlx command line of a tier, derived from what the model can do.

Flag names are those of vllm-mlx 0.6.0 (``vllm-mlx serve --help``; a test checks every name
here against the installed CLI). Two traps are closed here rather than documented:

- the cache and scheduler flags only take effect with ``--continuous-batching``; without it
  vllm-mlx accepts and silently ignores them, so a tier asking for them without continuous
  batching is refused (we do not add ``--continuous-batching`` behind the user's back: it
  changes the engine, and is slower for a single user);
- the flags this module owns (host, port, served name, parsers) cannot be overridden through
  ``flags``, so the LiteLLM config and the health checks always match the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_mlxstack.errors import MlxStackError

CONTINUOUS_BATCHING = "--continuous-batching"
PAGED_CACHE = "--use-paged-cache"

# Read only when --continuous-batching builds a SchedulerConfig (vllm_mlx/cli.py, serve_command).
BATCHING_ONLY_FLAGS = frozenset(
    {
        "--use-paged-cache",
        "--paged-cache-block-size",
        "--max-cache-blocks",
        "--enable-prefix-cache",
        "--disable-prefix-cache",
        "--prefix-cache-size",
        "--cache-memory-mb",
        "--cache-memory-percent",
        "--no-memory-aware-cache",
        "--kv-cache-quantization",
        "--kv-cache-quantization-bits",
        "--kv-cache-quantization-group-size",
        "--kv-cache-min-quantize-tokens",
        "--ssd-cache-dir",
        "--ssd-cache-max-gb",
        "--chunked-prefill-tokens",
        "--max-num-seqs",
        "--prefill-batch-size",
        "--completion-batch-size",
        "--stream-interval",
    }
)

# Set from the spec; a second value in ``flags`` would silently win or clash.
MANAGED_FLAGS = {
    "--host": "every service binds 127.0.0.1",
    "--port": "set the tier's port instead",
    "--served-model-name": "set the tier's served_name instead",
    "--enable-auto-tool-choice": "it follows the model's tool_calling capability",
    "--tool-call-parser": "it follows the model's tool_call_parser",
    "--reasoning-parser": "it follows the model's reasoning_parser",
    "--continuous-batching": "set the tier's continuous_batching: true instead",
    "--api-key": "LiteLLM holds the stack's key; the tiers listen on loopback only",
}


class FlagError(MlxStackError, ValueError):
    """A flag list that would not do what it says; ``problem`` and ``fix`` form the sentence."""


@dataclass(frozen=True)
class ParserChoice:
    """The parsers a model needs; ``None`` leaves that feature off."""

    tool_call_parser: str | None = None
    reasoning_parser: str | None = None


def flag_name(argument: str) -> str:
    """``--max-tokens=5`` -> ``--max-tokens``."""
    return argument.split("=", 1)[0]


def check_extra_flags(flags: Sequence[str], *, continuous_batching: bool) -> None:
    """Refuse managed flags, and batching-only flags without continuous batching."""
    for argument in flags:
        name = flag_name(argument)
        if name in MANAGED_FLAGS:
            raise FlagError(f"sets {name}, which pytest-mlxstack manages", MANAGED_FLAGS[name])
        if name in BATCHING_ONLY_FLAGS and not continuous_batching:
            raise FlagError(
                f"sets {name}, which vllm-mlx silently ignores without continuous batching",
                "also set continuous_batching: true on the tier, or drop the flag",
            )


def vllm_serve_args(
    *,
    parsers: ParserChoice,
    continuous_batching: bool = False,
    paged_cache: bool = False,
    extra: Sequence[str] = (),
) -> tuple[str, ...]:
    """The arguments after ``vllm-mlx serve MODEL``, except those the service manager adds
    itself (``--host``, ``--port``, ``--served-model-name``)."""
    check_extra_flags(extra, continuous_batching=continuous_batching)
    if paged_cache and not continuous_batching:
        raise FlagError(
            "asks for the paged cache, which vllm-mlx silently ignores without continuous batching",
            "also enable continuous batching",
        )
    args: list[str] = []
    if parsers.tool_call_parser is not None:
        args += ["--enable-auto-tool-choice", "--tool-call-parser", parsers.tool_call_parser]
    if parsers.reasoning_parser is not None:
        args += ["--reasoning-parser", parsers.reasoning_parser]
    if continuous_batching:
        args.append(CONTINUOUS_BATCHING)
    if paged_cache:
        args.append(PAGED_CACHE)
    args += extra
    return tuple(args)
