"""Last line of defence: known secrets are cut out of every test report before it is shown.

The library keeps secrets out of the frame locals ``pytest -l`` prints (``Secret``,
``RedactedEnv``), but a test of the user's own may hold ``os.environ["HF_TOKEN"]`` in a local,
and an exception message may quote one. Each report's failure representation (what the
terminal, ``--tb=long``, ``--full-trace`` and junit XML print) and its captured sections are
walked and every known secret value is replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection
from typing import Any

import pytest

from pytest_mlxstack.text.redact import redact_values

_MAX_DEPTH = 12


@functools.lru_cache(maxsize=1)
def hub_token() -> str | None:
    """The Hub token ``huggingface_hub`` would send (``HF_TOKEN`` or the saved login), read
    once: it is a secret even when it comes from a file rather than the environment."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    try:
        return get_token() or None
    except Exception:  # a broken token file is not this plugin's concern here
        return None


def redact_report(report: pytest.TestReport, secrets: Collection[str]) -> None:
    """Replace every value of ``secrets`` in ``report`` (its ``longrepr`` and sections)."""
    if not secrets:
        return
    report.longrepr = _scrub(report.longrepr, secrets, 0)
    report.sections = [(title, redact_values(text, secrets)) for title, text in report.sections]


def _scrub(value: Any, secrets: Collection[str], depth: int) -> Any:
    """``value`` with secrets cut out of its strings; pytest's representation objects (plain
    dataclasses of strings and lists) are changed in place."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        return redact_values(value, secrets)
    if isinstance(value, list):
        value[:] = [_scrub(item, secrets, depth + 1) for item in value]
        return value
    if isinstance(value, tuple):
        return tuple(_scrub(item, secrets, depth + 1) for item in value)
    if isinstance(value, dict):
        return {key: _scrub(item, secrets, depth + 1) for key, item in value.items()}
    if type(value).__module__.startswith("_pytest") and hasattr(value, "__dict__"):
        fields = (
            [f.name for f in dataclasses.fields(value)]
            if dataclasses.is_dataclass(value)
            else list(vars(value))
        )
        for name in fields:
            current = getattr(value, name, None)
            if current is None or isinstance(current, (bool, int, float)):
                continue
            cleaned = _scrub(current, secrets, depth + 1)
            if cleaned is not current:
                object.__setattr__(value, name, cleaned)
    return value
