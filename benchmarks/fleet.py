"""A fleet in one machine: the smoke tier unsharded, then as N shards, merged.

    .venv/bin/python benchmarks/fleet.py [--shards 2] [--models tiny-chat,tiny-chat-no-tools]

Runs ``pytest --mlx-suites=smoke`` on the fixture catalog once whole and once per shard
(``--mlx-shard K/N``, one after another here; a fleet runs them at once on N machines), merges
the shards with ``mlxstack matrix merge`` and checks that the merged matrix equals the whole
run's cell for cell. Prints each run's wall time and the fleet's wall time (the slowest shard
plus the merge), so the gain of N machines is the ratio of the two. Never part of the test suite.

Measured 2026-12 on the 2-core dev machine shared with other jobs, the whole fixture catalog (4
models, 56 cells): unsharded 56.2 s; shards 47.0 s and 60.3 s; merge 0.9 s; so 0.92x, no gain.
On the fixture model every run's fixed costs (pytest start, LiteLLM's ~7 s start, each model's
warm-up) outweigh the probes; shards pay off where a model's load and probes take minutes (real
models, one Mac each). The merged matrix equalled the unsharded one cell for cell.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_mlxstack.matrix.model import Matrix, load_matrix


def cells(matrix: Matrix) -> dict[tuple[str, ...], tuple[str, str | None]]:
    return {
        (row.model, row.quant, row.server, cell.capability, cell.route.value): (
            cell.verdict.value,
            cell.attribution.value if cell.attribution else None,
        )
        for row, cell in matrix.iter_cells()
    }


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--models", default="")
    args = parser.parse_args()
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mlx-suites=smoke"]
    if args.models:
        pytest.append(f"--mlx-models={args.models}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = {**os.environ, "MLXSTACK_HOME": str(root / "home")}
        whole_s = timed([*pytest, f"--mlx-matrix-dir={root / 'whole'}"], root, env)
        shard_s = []
        for index in range(1, args.shards + 1):
            out = root / f"shard{index}"
            argv = [*pytest, f"--mlx-shard={index}/{args.shards}", f"--mlx-matrix-dir={out}"]
            shard_s.append(timed(argv, root, env))
        inputs = [str(root / f"shard{i}" / "latest.json") for i in range(1, args.shards + 1)]
        merge = [sys.executable, "-m", "pytest_mlxstack", "matrix", "merge", *inputs]
        merge_s = timed([*merge, "-o", str(root / "fleet.json")], root, env)
        whole = load_matrix(root / "whole" / "latest.json")
        fleet = load_matrix(root / "fleet.json")
        equal = cells(whole) == cells(fleet)
    print(f"unsharded: {whole_s:.1f} s, {len(cells(whole))} cells")
    for index, seconds in enumerate(shard_s, start=1):
        print(f"shard {index}/{args.shards}: {seconds:.1f} s")
    fleet_s = max(shard_s) + merge_s
    print(f"merge: {merge_s:.1f} s; fleet wall time (slowest shard + merge): {fleet_s:.1f} s")
    print(f"speed-up with {args.shards} machines: {whole_s / fleet_s:.2f}x")
    print(f"merged matrix equals the unsharded one cell for cell: {equal}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
