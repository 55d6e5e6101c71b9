"""Export the catalog-entry JSON Schema (``matrices/catalog-entry.schema.json``) for editors.

    python -m pytest_mlxstack.catalog.jsonschema          # rewrite the committed schema
    python -m pytest_mlxstack.catalog.jsonschema --check  # exit 1 if it is out of date

The file is generated from the pydantic models, so it cannot drift from what the loader
accepts as long as the ``--check`` test runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_mlxstack.catalog.schema import catalog_entry_json_schema
from pytest_mlxstack.process.atomic import write_text_atomic

SCHEMA_FILE = Path("matrices") / "catalog-entry.schema.json"


def render_schema() -> str:
    """The schema as the committed file holds it (sorted keys, trailing newline)."""
    return json.dumps(catalog_entry_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path) -> None:
    """Write atomically: a reader never sees half a schema."""
    write_text_atomic(path, render_schema())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_mlxstack.catalog.jsonschema", description=__doc__.split("\n")[0]
    )
    parser.add_argument("path", nargs="?", type=Path, default=SCHEMA_FILE)
    parser.add_argument("--check", action="store_true", help="only report whether it is current")
    args = parser.parse_args(argv)
    path: Path = args.path
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != render_schema():
            print(
                f"{path} is out of date; run python -m pytest_mlxstack.catalog.jsonschema",
                file=sys.stderr,
            )
            return 1
        print(f"{path} is current")
        return 0
    write_schema(path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
