"""Check tool-call arguments against the tool's JSON Schema.

Tools are declared with a small part of JSON Schema (types, required keys, enums, nested
objects and arrays); this checks that part, so that the probes need no extra dependency.
Keywords it does not know are ignored rather than guessed at.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_problems(value: Any, schema: dict[str, Any], where: str = "arguments") -> list[str]:
    """Every way ``value`` breaks ``schema``, one short sentence each; empty when it fits."""
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, name) for name in names):
            problems.append(f"{where} should be {' or '.join(names)}, got {_describe(value)}")
            return problems
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(item) for item in schema["enum"])
        problems.append(f"{where} is {value!r}, not one of {allowed}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where} lacks the required key {key!r}")
        for key, item in value.items():
            if key in properties:
                problems += schema_problems(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where} has the unknown key {key!r}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += schema_problems(item, schema["items"], f"{where}[{index}]")
    return problems


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False  # JSON true is not a number, although bool subclasses int in Python
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def _describe(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    for kind, label in names.items():
        if isinstance(value, kind):
            return f"{label} ({value!r:.80})"
    return f"{type(value).__name__} ({value!r:.80})"
