"""Keep secrets out of matrices: evidence is copied from real requests, which carry keys.

Every value recorded into a cell passes through ``sanitize`` (on the worker, before it travels
on a test report) and again before a matrix is written, so that a bearer token or an ``sk-``
key never reaches a report, a JSON file or the HTML.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_PATTERNS = (
    # A header written out in a string: "Authorization: Bearer abc", "x-api-key=abc".
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|x-api-key)(\W{0,3}[:=]\W{0,3})"
            r"(?:(?:bearer|basic|token)\s+)?[^\s\"',;}]+"
        ),
        r"\1\2" + REDACTED,
    ),
    # A bearer token anywhere else.
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}"), "Bearer " + REDACTED),
    # OpenAI/LiteLLM style keys (sk-..., sk-proj-...), Hugging Face tokens.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-" + REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{10,}"), "hf_" + REDACTED),
    # key=value pairs in URLs or log lines.
    (
        re.compile(r"(?i)\b(api[_-]?key|access[_-]?token|master[_-]?key|password)=([^&\s\"']+)"),
        r"\1=" + REDACTED,
    ),
)

# Mapping keys whose values are secrets whatever they look like.
_SECRET_KEYS = re.compile(
    r"(?i)^(authorization|proxy-authorization|x-api-key|api[_-]?key|"
    r"master[_-]?key|litellm[_-]?master[_-]?key|password|secret|token|access[_-]?token)$"
)


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def sanitize(value: Any) -> Any:
    """A plain-JSON copy of ``value`` with secrets redacted and non-finite floats as ``None``.

    Tuples become lists, unknown objects their ``str()``: the result always survives
    ``json.dumps(..., allow_nan=False)`` and xdist's report serialization.
    """
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return redact_text(str(value))
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        clean: dict[str, Any] = {}
        for key, item in value.items():
            name = redact_text(str(key))
            if _SECRET_KEYS.match(name) and item not in (None, ""):
                clean[name] = REDACTED
            else:
                clean[name] = sanitize(item)
        return clean
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [sanitize(item) for item in items]
    return redact_text(str(value))
