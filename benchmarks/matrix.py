"""Time to matrix: the main job (all four tiers on the fixture catalog, real stack) from start
to a written matrix, and how often each vllm-mlx was started.

    .venv/bin/python benchmarks/matrix.py [--catalog PATH] [--runs N] [--kinds K,...]
                                          [-- PYTEST_ARGS...]

Runs ``python -m pytest_mlxstack.mainjob`` (the same pytest invocation as ``make matrix``)
into a temporary matrix directory with its own MLXSTACK_HOME, and prints the wall time and its
ratio to the 25 s target (issue 13: the fixture catalog with every capability), the server
starts per model and flags (target: exactly one), each row's figures as the matrix page shows
them (startup, memory, time to first token, decode and prompt tokens per second; informative),
and per row its cells and the completion tokens the probes requested (their budgets, as the
evidence records them) and used, with their ratio and what they cost at the row's decode speed
(on a Mac a matrix costs roughly the tokens it requests over the model's speed).
The target is for one server kind: ``--kinds`` defaults to vllm-mlx (``make matrix`` runs every
installed kind one after the other, so its time is the sum). Pass ``--durations=N`` after
``--`` to see which tests take the time.
Exit status 1 when the median misses the target, a model was not started exactly once (in
the main job's start table or a matrix row), or a main job failed or wrote no matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_S = 25.0
START_LINE = re.compile(
    r"^(?P<model>\S+) as (?P<served>\S+): (?P<starts>\d+) start\(s\) (?P<flags>.*)$"
)


def one_run(
    catalog: str | None, kinds: str, extra: list[str]
) -> tuple[float, int, list[str], dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="mlx-matrix-bench-") as work:
        matrix_dir = Path(work) / "matrices"
        command = [sys.executable, "-m", "pytest_mlxstack.mainjob", "--matrix-dir", str(matrix_dir)]
        command.append(f"--kinds={kinds}")
        if catalog:
            command += ["--catalog", catalog]
        command += ["--", "-q", *extra]
        env = {**os.environ, "MLXSTACK_HOME": str(Path(work) / "home")}
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - started
        starts = [m.group(0) for m in map(START_LINE.match, done.stdout.splitlines()) if m]
        rows: dict[str, int] = {}
        latest = matrix_dir / "latest.json"
        if latest.is_file():
            for row in json.loads(latest.read_text(encoding="utf-8"))["rows"]:
                label = f"{row['model']} [{row['quant']}] @{row['server']}"
                rows[label] = row["server_starts"]
                print(f"  {label}: {_figures(row)}")
                print(f"    {_tokens(row)}")
        else:
            print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
        lines = done.stdout.splitlines()
        slowest = [i for i, line in enumerate(lines) if "slowest" in line and "durations" in line]
        if slowest:  # --durations=N was passed: where the time went
            block = lines[slowest[0] : slowest[0] + 1 + 40]
            print(*(line for line in block if line.strip() and "=====" not in line), sep="\n")
        return elapsed, done.returncode, starts, rows


def _figures(row: dict[str, object]) -> str:
    shapes = (
        ("startup", "startup_s", "{:.1f} s"),
        ("memory", "memory_mb", "{:.0f} MB"),
        ("first token", "ttft_s", "{:.3f} s"),
        ("decode", "decode_tokens_per_s", "{:.0f} tok/s"),
        ("prompt", "prompt_tokens_per_s", "{:.0f} tok/s"),
    )
    return ", ".join(
        f"{label} {shape.format(row[key]) if row.get(key) is not None else 'not measured'}"
        for label, key, shape in shapes
    )


def _requested(request: object) -> int:
    """Completion-token budgets named in a cell's request evidence (nested conversations and
    protocol steps included)."""
    if isinstance(request, dict):
        total = 0
        for key, value in request.items():
            if key in ("max_tokens", "max_output_tokens") and isinstance(value, int):
                total += value
            else:
                total += _requested(value)
        return total
    if isinstance(request, list):
        return sum(_requested(item) for item in request)
    return 0


def _tokens(row: dict[str, Any]) -> str:
    """What a matrix of this row costs a real model: cells, completion tokens requested (the
    budgets in the evidence) and used. On a Mac, time ~ requested / decode speed for a model
    that fills its budgets (a reasoning model), used / decode speed otherwise."""
    cells = row.get("cells", [])
    requested = sum(_requested(cell["evidence"].get("request", {})) for cell in cells)
    used = sum(cell["evidence"].get("completion_tokens") or 0 for cell in cells)
    ratio = f"{used / requested:.3f}" if requested else "n/a"
    decode = row.get("decode_tokens_per_s")
    cost = (
        f"; at its decode speed ({decode:.0f} tok/s) the requested tokens are "
        f"{requested / decode:.0f} s, the used ones {used / decode:.1f} s"
        if decode
        else ""
    )
    return (
        f"{len(cells)} cells, completion tokens requested {requested:,} (budgets in the "
        f"evidence), used {used:,} (used/requested {ratio}){cost}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=None, help="default: the fixture catalog")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--kinds", default="vllm-mlx", help="server kinds (default: vllm-mlx)")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    times = []
    problems: list[str] = []
    for number in range(1, args.runs + 1):
        elapsed, status, starts, rows = one_run(args.catalog, args.kinds, args.pytest_args)
        times.append(elapsed)
        if status != 0:
            problems.append(f"run {number}: the main job exited with status {status}")
        if not rows:
            problems.append(f"run {number}: no matrix was written")
        wrong = {row: count for row, count in rows.items() if count != 1}
        if wrong:
            problems.append(f"run {number}: server starts other than 1 in the matrix: {wrong}")
        print(f"run {number}: time to matrix {elapsed:.1f} s (main job exit status {status})")
        print("  server starts per model and flags (vllm-mlx):")
        for line in starts:
            print(f"    {line}")
        print("  server starts per matrix row: " + ", ".join(f"{k}: {v}" for k, v in rows.items()))
        extra = [line for line in starts if not line.split(": ", 1)[1].startswith("1 start(s)")]
        once = bool(starts) and not extra
        print(f"  exactly one start per model and flags: {'yes' if once else 'NO'}")
        if not once:
            problems.append(f"run {number}: not exactly one start per model and flags")
    median = statistics.median(times)
    verdict = "met" if median <= TARGET_S else "MISSED"
    print(
        f"time to matrix: median {median:.1f} s over {len(times)} run(s); "
        f"target <= {TARGET_S:.0f} s (ratio {median / TARGET_S:.2f}, {verdict})"
    )
    if median > TARGET_S:
        problems.append(
            f"the median time to matrix {median:.1f} s misses the {TARGET_S:.0f} s target"
        )
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
