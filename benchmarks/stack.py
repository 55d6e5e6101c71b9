"""How long a real stack takes to come up and go down, and what LiteLLM adds per request.

    .venv/bin/python benchmarks/stack.py [--stack FILE] [--runs N] [--requests N]

Default stack: tier ``fast`` on the fixture model ``tiny-chat`` behind LiteLLM. Per run: time
until the tier's vllm-mlx answers ``/health``, then LiteLLM's ``/health/liveliness``, the first
completion (vllm-mlx warms up on it), later completions through the proxy and directly, and
``down``. Prints medians and p90s, and the proxy's overhead as a ratio. The reuse line shows
what the session pool saves: a second stack on the same model with a pooled tier.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_mlxstack.probe_prompts import GREETING
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.stack import (
    LiteLLMSpec,
    ServerPool,
    StackSpec,
    default_stack_spec,
    load_stack_file,
)
from pytest_mlxstack.stack.clients import proxy_client, tier_client
from pytest_mlxstack.stack.runtime import start_stack


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def line(name: str, values: list[float]) -> str:
    return f"  {name:<34} median {statistics.median(values):7.3f} s   p90 {p90(values):7.3f} s"


def one_run(spec: StackSpec, requests: int, root: Path) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    with ServiceManager(root / "home", grace_period=10) as manager:
        begun = time.monotonic()
        stack = start_stack(spec, manager=manager, directory=root / "stack")
        figures["stack up (tiers + LiteLLM)"] = [time.monotonic() - begun]
        tier = next(iter(stack.tiers.values()))
        if tier.startup_s is not None:
            figures["vllm-mlx ready (/health)"] = [tier.startup_s]
        figures["LiteLLM ready after the tiers"] = [
            time.monotonic() - begun - (tier.startup_s or 0)
        ]
        with proxy_client(stack) as proxy, tier_client(stack, tier.tier) as direct:
            ask = {"messages": GREETING.messages, "temperature": 0, "max_tokens": 16}
            begun = time.monotonic()
            direct.chat.completions.create(model=tier.served_name, **ask)  # type: ignore[call-overload]
            figures["first completion (warm-up)"] = [time.monotonic() - begun]
            for name, client, model in (
                ("completion through LiteLLM", proxy, tier.tier),
                ("completion direct to vllm-mlx", direct, tier.served_name),
            ):
                for _ in range(requests):
                    begun = time.monotonic()
                    client.chat.completions.create(model=model, **ask)  # type: ignore[call-overload]
                    figures.setdefault(name, []).append(time.monotonic() - begun)
        begun = time.monotonic()
        stack.down()
        figures["down"] = [time.monotonic() - begun]
    return figures


def pool_reuse(spec: StackSpec, root: Path) -> tuple[float, float]:
    """Seconds for a first pooled stack (starts the model) and a second (reuses it)."""
    plain = dataclasses.replace(spec, litellm=LiteLLMSpec(enabled=False))
    with (
        ServiceManager(root / "home", grace_period=10) as manager,
        ServerPool(manager, root / "pool") as pool,
    ):
        begun = time.monotonic()
        with start_stack(plain, manager=manager, directory=root / "a", pool=pool):
            first = time.monotonic() - begun
            begun = time.monotonic()
            with start_stack(plain, manager=manager, directory=root / "b", pool=pool):
                second = time.monotonic() - begun
    return first, second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", type=Path, help="stack file (default: tiny-chat as 'fast')")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    spec = load_stack_file(args.stack) if args.stack else default_stack_spec()
    collected: dict[str, list[float]] = {}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="mlxstack-bench-") as tmp:
            for name, values in one_run(spec, args.requests, Path(tmp)).items():
                collected.setdefault(name, []).extend(values)
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    print(f"stack: {', '.join(t.source_label for t in spec.tiers)}; {args.runs} runs")
    for name, values in collected.items():
        print(line(name, values))
    proxy = statistics.median(collected["completion through LiteLLM"])
    direct = statistics.median(collected["completion direct to vllm-mlx"])
    print(f"  LiteLLM overhead per request: {proxy - direct:+.3f} s ({proxy / direct:.1f}x direct)")
    with tempfile.TemporaryDirectory(prefix="mlxstack-bench-") as tmp:
        first, second = pool_reuse(spec, Path(tmp))
    print(
        f"  pooled stack: first {first:.3f} s (starts the model), second {second:.3f} s "
        f"(reuses it): {first / max(second, 1e-6):.0f}x faster"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
