"""The published JSON Schema of matrix files, generated from the models that write them.

``matrices/matrix.schema.json`` is this schema; ``mlxstack matrix schema -o`` regenerates it and
a test fails when the committed copy is stale.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_mlxstack.matrix.model import PERFORMANCE_FIELDS, SCHEMA_VERSION, Matrix

ADDED_WITHIN_VERSION: dict[str, tuple[str, ...]] = {
    "Row": PERFORMANCE_FIELDS,
    "RunMetadata": ("provenance",),
}
SCHEMA_ID = "https://pytest-mlxstack.dev/schemas/matrix-v{version}.schema.json"


def matrix_json_schema() -> dict[str, Any]:
    """Draft 2020-12 schema describing the files as written (every field present)."""
    schema = Matrix.model_json_schema(mode="serialization")
    # Added within version 2: files written before lack them and must still validate.
    for model, added in ADDED_WITHIN_VERSION.items():
        definition = schema["$defs"][model]
        definition["required"] = [name for name in definition["required"] if name not in added]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID.format(version=SCHEMA_VERSION),
        **schema,
        "title": f"pytest-mlxstack compatibility matrix (schema version {SCHEMA_VERSION})",
    }


def schema_text() -> str:
    return json.dumps(matrix_json_schema(), indent=2, sort_keys=True) + "\n"
