"""``mlxstack``: bring a stack up and down, and render, merge and diff matrices.

Each command family lives in its own module exposing ``register(subparsers)``; a command's
handler returns the process exit code. Errors meant for the user are raised as ``CliError``
and printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pytest_mlxstack import __version__
from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.text.terminal import one_line

COMMAND_MODULES = (
    "pytest_mlxstack.cli.stack_commands",
    "pytest_mlxstack.cli.matrix_commands",
)


class CliError(MlxStackError):
    """A user-facing error: printed as ``mlxstack: <message>`` with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlxstack", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except CliError as exc:  # its text may quote files, logs or model output: print it plain
        print(f"mlxstack: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
