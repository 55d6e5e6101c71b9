"""Speed and memory of a fixture model served by the real vllm-mlx on this machine.

    .venv/bin/python benchmarks/fixture_model.py [--variant tiny-chat] [--requests 20]

Starts ``vllm-mlx serve`` on the shipped folder with the flags the stack uses (hermes tool
parser, qwen3 reasoning parser), then measures: seconds until /health answers; the first
(warm-up) completion; generation tokens per second over repeated greedy answers to "Count to
10." (the same answer in every variant; the time includes each request's overhead); prompt
tokens per second from the time to the first streamed content of the tool-result probe (the
longest prompt; a lower bound, since that time includes the first generated tokens); and the
peak resident memory of the server's process tree. These are the ``linux-x86-cpu`` figures
of the fixture catalog. Never part of the test suite; there is no target, it only prints.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import openai
import psutil

from pytest_mlxstack.fixture_models import VARIANTS, fixture_model_path
from pytest_mlxstack.probe_prompts import count_to, weather_result
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.stack.servers import ServerKey, start_server

FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser", "qwen3")


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny-chat", choices=list(VARIANTS))
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, ServiceManager(Path(home)) as manager:
        started = time.perf_counter()
        key = ServerKey(fixture_model_path(args.variant), args.variant, tuple(FLAGS), None)
        home_dir = Path(home) / "server-home"
        service = start_server(manager, args.variant, key, 600, home_dir, {})
        ready_s = time.perf_counter() - started
        client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
        peak = tree_rss(service.pid)

        def ask(**extra: object) -> object:
            return client.chat.completions.create(
                model=args.variant,
                messages=count_to(10).messages,  # type: ignore[arg-type]
                temperature=0,
                max_tokens=96,
                **extra,  # type: ignore[arg-type]
            )

        started = time.perf_counter()
        ask()
        warmup_s = time.perf_counter() - started

        tokens = 0
        started = time.perf_counter()
        for _ in range(args.requests):
            response = ask()
            tokens += response.usage.completion_tokens  # type: ignore[attr-defined]
            peak = max(peak, tree_rss(service.pid))
        gen_s = time.perf_counter() - started

        case = weather_result("Toronto")
        first_token_s = []
        prompt_tokens = 0
        for _ in range(args.requests):
            started = time.perf_counter()
            stream = client.chat.completions.create(
                model=args.variant,
                messages=case.messages,  # type: ignore[arg-type]
                tools=case.tools,  # type: ignore[arg-type]
                temperature=0,
                max_tokens=64,
                stream=True,
                stream_options={"include_usage": True},
            )
            first = None
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
            first_token_s.append(first or 0.0)
        peak = max(peak, tree_rss(service.pid))
        client.close()

    ttft = sorted(first_token_s)[len(first_token_s) // 2]
    print(f"variant:            {args.variant}")
    print(f"ready after:        {ready_s:.1f} s")
    print(f"first completion:   {warmup_s:.2f} s (warm-up)")
    print(f"generation:         {tokens / gen_s:.0f} tokens/s ({tokens} tokens, {gen_s:.2f} s)")
    print(f"prompt:             {prompt_tokens / ttft:.0f} tokens/s ({prompt_tokens} tokens, "
          f"median time to first content {ttft * 1000:.0f} ms)")  # fmt: skip
    print(f"peak memory (RSS):  {peak / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
