"""Service lifecycle speed against real processes (the toy server in tests/servers).

    .venv/bin/python benchmarks/lifecycle.py [--runs 10]

For ``--runs`` runs each, prints the median and p90 of:

- stop time of a well-behaved server: ``ServiceManager.stop`` from call to return, everything
  gone (target: median <= 0.5 s; the design this replaces slept at least 3 s per stop);
- crash-report time: from the server process giving up during start-up (it writes the moment
  to a file, then exits) to ``start`` raising ``ServiceStartError`` (target: <= 1 s);
- readiness lag: from the server starting to listen (recorded by the server) to ``start``
  returning (target: <= 0.1 s).

Exits 1 if a median misses its target, so it can gate a release job; it is never part of the
test suite (the suite asserts behaviour, not timings).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_mlxstack.process.services import ServiceManager, ServiceStartError

TOY = Path(__file__).resolve().parents[1] / "tests" / "servers" / "toy_server.py"
REPLACED_STOP_S = 3.0
TARGETS = {"stop": 0.5, "crash report": 1.0, "readiness lag": 0.1}


def toy(mode: str, stamp: Path, *extra: str) -> list[str]:
    argv = [sys.executable, str(TOY), "--port", "{port}", "--mode", mode]
    return [*argv, "--listen-file", str(stamp), *extra]


def measure(runs: int, home: Path) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {name: [] for name in TARGETS}
    stamp = home / "stamp"
    with ServiceManager(home, grace_period=10.0) as manager:
        for i in range(runs):
            stamp.unlink(missing_ok=True)
            manager.start(f"ready-{i}", toy("behave", stamp))
            returned = time.time()
            figures["readiness lag"].append(returned - float(stamp.read_text()))

            began = time.monotonic()
            manager.stop(f"ready-{i}")
            figures["stop"].append(time.monotonic() - began)

            stamp.unlink(missing_ok=True)
            try:
                manager.start(f"crash-{i}", toy("crash", stamp, "--delay", "0.3"))
            except ServiceStartError:
                raised = time.time()
            else:
                raise SystemExit("the crashing server started; the benchmark is broken")
            figures["crash report"].append(raised - float(stamp.read_text()))
    return figures


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlxstack-bench-") as tmp:
        figures = measure(args.runs, Path(tmp))

    missed = []
    print(f"{'metric':<15} {'median':>9} {'p90':>9} {'target':>9}   ({args.runs} runs each)")
    for name, values in figures.items():
        median = statistics.median(values)
        ok = median <= TARGETS[name]
        missed += [] if ok else [name]
        print(
            f"{name:<15} {median:>8.3f}s {p90(values):>8.3f}s {TARGETS[name]:>8.1f}s"
            f"   {'ok' if ok else 'MISSED'}"
        )
    stop = statistics.median(figures["stop"])
    print(
        f"stop vs the replaced design's {REPLACED_STOP_S:g} s sleep per stop: "
        f"{REPLACED_STOP_S / stop:.0f}x faster ({stop * 1000:.0f} ms vs {REPLACED_STOP_S:g} s)"
    )
    if missed:
        print(f"targets missed: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
