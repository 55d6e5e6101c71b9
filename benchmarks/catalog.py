"""Tier-1 catalog checking speed: 100 repositories on a local Hub answering in 100 ms each.

    .venv/bin/python benchmarks/catalog.py [--repos 100] [--latency 0.1] [--workers 32]

Loads a generated 100-entry catalog from YAML, runs the structural checks and the Hub checks
(model info with file sizes, then the chat template: two requests per repository) through the
real ``huggingface_hub`` client against ``LocalHub``, first concurrently (the shipped design),
then one request at a time (the design it replaces), in the same process. Target: the
concurrent run takes at most 1.5 s. Prints both figures and their ratio; exits 1 if the target
is missed, so it can gate a release job, but it is never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pytest_mlxstack.catalog import load_catalog
from pytest_mlxstack.catalog.checks import ENTRY_CHECKS, source_checks
from pytest_mlxstack.catalog.hub import HubClient, HubSettings, Verdict, hub_problems
from pytest_mlxstack.catalog.hubserver import LocalHub

TARGET_S = 1.5
TEMPLATE = "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}{{ m }}{% endfor %}"


def write_catalog(folder: Path, count: int) -> None:
    for i in range(count):
        entry = {
            "id": f"bench-{i:03d}",
            "name": f"Bench {i}",
            "family": "Bench",
            "params_b": 8.0,
            "architecture": "qwen3",
            "min_mlx_lm_version": "0.24.0",
            "sources": {"int4": {"hf_repo": f"bench/model-{i:03d}-4bit", "disk_size_gb": 4.5}},
            "capabilities": {"tool_calling": True, "tool_call_parser": "hermes"},
            "benchmarks": {"m4-pro-48gb": {"gen_tps": 40, "memory_gb": 5}},
        }
        (folder / f"bench-{i:03d}.yaml").write_text(yaml.safe_dump(entry), encoding="utf-8")


def publish(hub: LocalHub, count: int) -> None:
    for i in range(count):
        hub.add_repo(
            f"bench/model-{i:03d}-4bit",
            {
                "config.json": json.dumps({"model_type": "qwen3"}),
                "tokenizer.json": "{}",
                "tokenizer_config.json": json.dumps({"chat_template": TEMPLATE}),
                "model.safetensors": 4_500_000_000,
            },
        )


def tier1(folder: Path, hub: LocalHub, workers: int) -> tuple[float, int, int]:
    """(seconds, problems found, requests made) for one whole tier-1 checking pass."""
    hub.clear_requests()
    start = time.perf_counter()
    catalog = load_catalog(folder)
    problems = 0
    for entry in catalog:
        problems += sum(len(check(entry)) for check in ENTRY_CHECKS.values())
        for quant in entry.sources:
            problems += sum(len(c(entry, quant)) for c in source_checks(entry, quant).values())
    client = HubClient(HubSettings(endpoint=hub.url), workers=workers)
    targets = [(s.hf_repo, s.revision) for e in catalog for s in e.sources.values() if s.hf_repo]
    reports = client.inspect_many(targets)
    for entry in catalog:
        for quant, source in entry.sources.items():
            report = reports[(source.hf_repo or "", source.revision)]
            assert report.verdict is Verdict.EXISTS, report.detail
            problems += len(hub_problems(entry, quant, report))
    return time.perf_counter() - start, problems, len(hub.requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalHub(latency=args.latency) as hub:
        folder = Path(tmp)
        write_catalog(folder, args.repos)
        publish(hub, args.repos)
        concurrent, problems, requests = tier1(folder, hub, args.workers)
        serial, serial_problems, _ = tier1(folder, hub, 1)
    assert problems == serial_problems == 0
    print(f"catalog tier 1: {args.repos} repositories, {requests} Hub requests, "
          f"{args.latency * 1000:.0f} ms latency each")  # fmt: skip
    print(f"  concurrent ({args.workers} workers): {concurrent:6.2f} s   (target <= {TARGET_S} s)")
    print(f"  serial (1 request at a time):   {serial:6.2f} s")
    print(f"  speed-up: {serial / concurrent:.1f}x")
    if concurrent > TARGET_S:
        print(f"MISSED: {concurrent:.2f} s > {TARGET_S} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
