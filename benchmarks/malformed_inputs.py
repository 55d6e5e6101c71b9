"""Malformed inputs, each given as a user would, counted by whether it gets one sentence.

    .venv/bin/python benchmarks/malformed_inputs.py [--timeout 60] [-v]

Runs every malformed input of issue 16 (and a few more) through the real entry points in
subprocesses: ``mlxstack up/status/down/logs`` (bad ``--home``, ``--grace-period``, ``--port``,
``--stack``, ``--catalog``), ``mlxstack matrix diff`` (files that are not matrices), ``pytest
--mlx-catalog`` (malformed catalogs) and ``pytest --mlx-expectations``. An input is answered
well when the process exits non-zero within the timeout with exactly one line on stderr
(``mlxstack: ...`` or ``ERROR: ...``), and no traceback. Prints one line
per input and the counts; exits 1 unless every input is answered well. Never part of the suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

ENTRY = {
    "id": "qwen3-8b",
    "name": "Qwen3 8B",
    "family": "Qwen3",
    "params_b": 8.2,
    "architecture": "qwen3",
    "min_mlx_lm_version": "0.24.0",
    "sources": {"int4": {"hf_repo": "mlx-community/Qwen3-8B-4bit", "disk_size_gb": 4.6}},
    "benchmarks": {"m4-pro-48gb": {"gen_tps": 40, "memory_gb": 5.1}},
}
ENTRY_TEXT = yaml.safe_dump(ENTRY, sort_keys=False)
# Without CAP_DAC_OVERRIDE root is refused by file modes like any user.
AS_USER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # the command, given a fresh scratch folder


def mlxstack(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_mlxstack", *args]


def pytest_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def make(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return build


def fifo(name: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        return path

    return build


def link(name: str, target: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        path = root / name
        path.symlink_to(target)
        return path

    return build


def read_only(root: Path) -> Path:
    path = root / "ro"
    path.mkdir()
    path.chmod(0o555)
    return path


def in_folder(build: Callable[[Path], Path]) -> Callable[[Path], Path]:
    """A catalog folder holding one good entry and what ``build`` makes inside it."""

    def folder(root: Path) -> Path:
        catalog = root / "catalog"
        catalog.mkdir()
        (catalog / "good.yaml").write_text(ENTRY_TEXT.replace("qwen3-8b", "good-8b"), "utf-8")
        build(catalog)
        return catalog

    return folder


def laughs() -> str:
    lines = ["id: x", "l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def cli_cases() -> list[Case]:
    def home(build: Callable[[Path], Path], *args: str, sub: str = "") -> Callable[..., list[str]]:
        def argv(root: Path) -> list[str]:
            path = build(root)
            return [*mlxstack(*args, "--home", str(path / sub if sub else path))]

        return argv

    def as_user(argv: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            return argv
        return lambda root: [*AS_USER, *argv(root)]

    file = make("file", "x\n")

    def fresh(root: Path) -> Path:
        return root

    cases = [
        Case("up --home FILE", home(file, "up")),
        Case("up --home FILE/sub", home(file, "up", sub="sub")),
        Case("up --home READ-ONLY", as_user(home(read_only, "up"))),
        Case("up --home READ-ONLY/sub", as_user(home(read_only, "up", sub="sub"))),
        Case("status --home FILE", home(file, "status")),
        Case("down --home FILE", home(file, "down")),
        Case("logs x --home FILE", home(file, "logs", "x")),
    ]
    for command, value in [
        ("up", "-1"),
        ("up", "nan"),
        ("up", "inf"),
        ("up", "ten"),
        ("down", "-5"),
        ("down", "nan"),
    ]:
        cases.append(
            Case(
                f"{command} --grace-period {value}",
                home(fresh, command, f"--grace-period={value}", sub="h"),
            )
        )
    for value in ("99999", "80", "http"):
        cases.append(Case(f"up --port {value}", home(fresh, "up", "--port", value, sub="h")))
    for label, build in [
        ("a named pipe", fifo("stack.yaml")),
        ("100,000 nested [", make("stack.yaml", "[" * 100_000)),
        ("two YAML documents", make("stack.yaml", "tiers: {}\n---\ntiers: {}\n")),
        ("a link to itself", link("stack.yaml", "stack.yaml")),
    ]:
        cases.append(
            Case(
                f"up --stack <{label}>",
                lambda root, build=build: [
                    *mlxstack("up", "--stack", str(build(root)), "--home", str(root / "h"))
                ],
            )
        )
    cases.append(
        Case(
            "up --model x --catalog <a link to itself>",
            lambda root: [
                *mlxstack(
                    "up",
                    "--model",
                    "x",
                    "--catalog",
                    str(link("c", "c")(root)),
                    "--home",
                    str(root / "h"),
                )
            ],
        )
    )
    return cases


def matrix_cases() -> list[Case]:
    files: list[tuple[str, Callable[[Path], Path]]] = [
        ("a JSON object that is not a matrix", make("m.json", '{"name": "x"}')),
        ("a JSON list", make("m.json", "[1, 2]")),
        ("a JSON syntax error", make("m.json", '{\n  "runs": [,]\n}\n')),
        ("a syntax error in a 5,000-character line", make("m.json", '{"a": "' + "x" * 5000)),
        ("100,000 nested [", make("m.json", "[" * 100_000)),
        ("a named pipe", fifo("m.json")),
        ("a link to itself", link("m.json", "m.json")),
        ("a dangling link", link("m.json", "gone.json")),
        ("bytes that are not UTF-8", make("m.json", b"\xff\xfe{}")),
        ("an empty file", make("m.json", "")),
        ("escape sequences in a broken line", make("m.json", '{"\x1b]0;t\x07": }')),
        ("a folder", lambda root: (root / "m").mkdir() or root / "m"),
    ]
    return [
        Case(
            f"matrix diff <{label}>",
            lambda root, build=build: mlxstack("matrix", "diff", str(build(root)), "other.json"),
        )
        for label, build in files
    ]


def catalog_cases() -> list[Case]:
    entry = ENTRY_TEXT
    builds: list[tuple[str, Callable[[Path], Path]]] = [
        ("a named pipe in the folder", in_folder(fifo("pipe.yaml"))),
        ("a folder named *.yaml", in_folder(lambda c: (c / "x.yaml").mkdir() or c)),
        ("100,000 nested [", in_folder(make("m.yaml", "[" * 100_000))),
        ("a path that links to itself", link("catalog.yaml", "catalog.yaml")),
        ("a dangling link", link("catalog", "moved-away")),
        ("a missing path", lambda root: root / "nowhere"),
        ("a second YAML document", in_folder(make("m.yaml", entry + "---\n" + entry))),
        ("a number as quantization", in_folder(make("m.yaml", entry.replace("  int4:", "  4:")))),
        ("yes as quantization", in_folder(make("m.yaml", entry.replace("  int4:", "  yes:")))),
        ("a YAML error at the end", in_folder(make("m.yaml", "id: x\nsources: {int4: [\n"))),
        ("an empty folder", lambda root: (root / "catalog").mkdir() or root / "catalog"),
        ("an alias bomb", in_folder(make("m.yaml", laughs()))),
        ("an alias inside itself", in_folder(make("m.yaml", "id: x\ns: &s {a: *s}\n"))),
        ("bytes that are not UTF-8", in_folder(make("m.yaml", b"id: caf\xe9\n"))),
        (
            "escape sequences in the id",
            in_folder(make("m.yaml", entry.replace("qwen3-8b", '"\\e]0;owned\\aBad Id"'))),
        ),
        ("a 5 MB file", in_folder(make("m.yaml", "# padding\n" * 500_000))),
        ("a misspelt field", in_folder(make("m.yaml", entry.replace("params_b", "paramsb")))),
    ]
    cases = [
        Case(
            f"pytest --mlx-catalog <{label}>",
            lambda root, build=build: pytest_run(f"--mlx-catalog={build(root)}"),
        )
        for label, build in builds
    ]
    cases.append(
        Case(
            "pytest --mlx-expectations <a named pipe>",
            lambda root: pytest_run(f"--mlx-expectations={fifo('e.yaml')(root)}"),
        )
    )
    return cases


def answered_well(result: subprocess.CompletedProcess[str] | None) -> tuple[bool, str]:
    if result is None:
        return False, "no answer within the timeout"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode == 0:
        return False, "exit 0"
    if "Traceback" in result.stdout + result.stderr or "INTERNALERROR" in result.stdout:
        return False, "a traceback"
    if len(lines) != 1:
        return False, f"{len(lines)} lines on stderr"
    line = lines[0]
    if not line.startswith(("mlxstack: ", "ERROR: ")):
        return False, "not one sentence"
    return True, line


def run(case: Case, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """The case's process and what it printed; ``None`` when it did not end in time (it is
    then stopped with its whole process group: an input the code accepts by mistake could
    have started a stack, which SIGTERM stops cleanly)."""
    with tempfile.TemporaryDirectory(prefix="mlxstack-malformed-") as scratch:
        root = Path(scratch)
        argv = case.argv(root)
        process = subprocess.Popen(
            argv,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
            return subprocess.CompletedProcess(argv, process.returncode, out, err)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            return None
        finally:
            for path in root.rglob("*"):  # give a read-only folder back for the clean-up
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)


def _stop_group(process: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.communicate(timeout=wait)
            time.sleep(1.0)  # the group's other members follow their leader out
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sentence")
    args = parser.parse_args(argv)
    groups = {"mlxstack": cli_cases(), "matrix": matrix_cases(), "catalog": catalog_cases()}
    totals = {}
    for group, cases in groups.items():
        good = 0
        for case in cases:
            ok, detail = answered_well(run(case, args.timeout))
            good += ok
            if args.verbose or not ok:
                print(f"{'ok  ' if ok else 'BAD '} {case.name}: {detail}")
        totals[group] = (good, len(cases))
    tried = sum(n for _, n in totals.values())
    good = sum(g for g, _ in totals.values())
    for group, (g, n) in totals.items():
        print(f"{group}: {g} of {n} answered in one sentence with a non-zero exit")
    print(f"malformed inputs tried: {tried}; answered in one sentence with a non-zero exit: {good}")
    return 0 if good == tried else 1


if __name__ == "__main__":
    sys.exit(main())
