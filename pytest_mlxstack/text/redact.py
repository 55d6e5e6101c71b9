"""Keep secrets out of matrices: evidence is copied from real requests, which carry keys.

Every value recorded into a cell passes through ``sanitize`` (on the worker, before it travels
on a test report) and again before a matrix is written, so that a bearer token or an ``sk-``
key never reaches a report, a JSON file or the HTML.
"""

from __future__ import annotations

import enum
import functools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

# A name that says its value is a secret: api_key, LITELLM_MASTER_KEY, HF_TOKEN, password,
# client_secret, ... (a prefix joined by "_" or "-" is allowed; "max_tokens" is not a secret).
_SECRET_NAME = (
    r"(?:[A-Za-z0-9]+[_-])*"
    r"(?:api[_-]?key|master[_-]?key|access[_-]?token|auth[_-]?token|secret[_-]?key|"
    r"password|passwd|secret|token)"
)

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
    # URL query parameters: ?token=..., &api_key=..., &key=..., &client_secret=...
    (
        re.compile(
            r"(?i)([?&;](?:[A-Za-z0-9_.-]*[_-])?(?:key|token|secret|password|passwd)=)"
            r"[^&#\s\"'<>]+"
        ),
        r"\1" + REDACTED,
    ),
    # NAME=value and name: value in log lines, environments, configs and JSON written out as
    # text: LITELLM_MASTER_KEY=abc, master_key: abc, "api_key": "abc". No \b before the name,
    # so that the part after an underscore (LITELLM_MASTER_KEY) still counts.
    (
        re.compile(
            r"(?i)(?<![A-Za-z0-9])(" + _SECRET_NAME + r")([\"']?[ \t]*[:=][ \t]*[\"']?)"
            r"(?!\[REDACTED\])[^\s\"',;&}<>]+"
        ),
        r"\1\2" + REDACTED,
    ),
)

# Mapping keys whose values are secrets whatever they look like.
_SECRET_KEYS = re.compile(
    r"(?i)^(authorization|proxy-authorization|x-api-key|" + _SECRET_NAME + r")$"
)
_MIN_SECRET = 4  # shorter "secrets" would redact ordinary words
# Values this process was given as secrets (an --mlx-api-key): redacted wherever text is.
_REGISTERED: set[str] = set()


def register_secret(value: str) -> None:
    """Redact ``value`` from now on in every ``redact_values``/``redact_text``/``sanitize``
    of this process: logs, report sections, matrix cells, provenance, the HTML. A key the
    user typed has no recognisable shape, so the patterns alone would miss it."""
    if len(value) >= _MIN_SECRET:
        _REGISTERED.add(value)


def registered_secrets() -> frozenset[str]:
    return frozenset(_REGISTERED)


def redact_values(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every exact ``secrets`` value (and every registered one) replaced by
    ``[REDACTED]``, longest first, so a secret containing another is not half shown; so is
    the part of one that a shortened repr keeps beside its ``...``."""
    values = tuple(sorted({s for s in secrets if s} | _REGISTERED, key=len, reverse=True))
    for secret in values:
        text = text.replace(secret, REDACTED)
    if "..." in text and values:
        text = _cut_pieces(values).sub(REDACTED, text)
    return text


@functools.lru_cache(maxsize=32)
def _cut_pieces(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """``...<end of a secret>`` and ``<start of a secret>...``: what pytest's shortened
    assertion reprs (``'Hello! You s...4WvLmN to me.'``) keep of a value."""
    pieces: list[str] = []
    for secret in secrets:
        for size in range(len(secret) - 1, _MIN_SECRET - 1, -1):
            pieces.append(r"(?<=\.\.\.)" + re.escape(secret[-size:]))
            pieces.append(re.escape(secret[:size]) + r"(?=\.\.\.)")
    return re.compile("|".join(pieces) or r"(?!)")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value and every secret-shaped string redacted."""
    text = redact_values(text, [s for s in secrets if len(s) >= _MIN_SECRET])
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def sanitize(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A plain-JSON copy of ``value`` with secrets redacted and non-finite floats as ``None``.

    ``secrets`` are exact values to redact wherever they appear (a stack's master key, say),
    on top of the secret-shaped strings every value is searched for. Tuples become lists,
    unknown objects their ``str()``: the result always survives
    ``json.dumps(..., allow_nan=False)`` and xdist's report serialization.
    """
    secrets = tuple(secrets)
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return redact_text(str(value), secrets)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        clean: dict[str, Any] = {}
        for key, item in value.items():
            name = redact_text(str(key), secrets)
            if _SECRET_KEYS.match(name) and item not in (None, ""):
                clean[name] = REDACTED
            else:
                clean[name] = sanitize(item, secrets)
        return clean
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [sanitize(item, secrets) for item in items]
    return redact_text(str(value), secrets)
