"""Checking setting values (seconds, ports, directories) the same way wherever they are given.

The CLI options and the pytest options/ini keys/environment variables accept the same kinds of
values; each check here turns a bad one into one ``SettingError`` sentence naming the
setting (``name``: ``--grace-period``, ``ini option mlx_grace_period``...) and the fix, so no
caller writes its own ``float(...)`` and forgets ``nan``. No pytest import: the pytest wiring
wraps the error in a ``UsageError``, the CLI prints it.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from pytest_mlxstack.errors import MlxStackError

PORT_RANGE = (1024, 65535)


class SettingError(MlxStackError, ValueError):
    """A setting with a value that cannot be used: ``<name>: <problem>; <fix>.``"""


def seconds(value: object, *, name: str) -> float:
    """A finite number of seconds, 0 or more (``"10"``, ``2.5``); anything else is an error.

    ``nan`` and ``inf`` parse as floats but mean nothing as a wait: a NaN grace period would
    SIGKILL at once, an infinite one would never stop.
    """
    text = str(value).strip()
    try:
        number = float(text) if not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        problem = "is negative" if number < 0 else "is not a finite number"
        raise SettingError(
            f"{_shown(text)} {problem}",
            "give a number of seconds, 0 or more, such as 10",
            where=name,
        )
    return number


def port(value: object, *, name: str, free_hint: str = "write auto for a free port") -> int | None:
    """A TCP port in 1024-65535, or ``None`` for ``auto``/empty (a free port is chosen)."""
    text = str(value).strip() if value is not None else ""
    if text in ("", "auto"):
        return None
    low, high = PORT_RANGE
    try:
        number = int(text) if not isinstance(value, bool) else -1
    except ValueError:
        raise SettingError(
            f"{_shown(text)} is not a port number",
            f"give a whole number from {low} to {high}, or {free_hint}",
            where=name,
        ) from None
    if not low <= number <= high:
        raise SettingError(
            f"{number} is out of range",
            f"give a port from {low} to {high}, or {free_hint}",
            where=name,
        )
    return number


def not_a_file(path: Path, *, name: str) -> Path:
    """``path`` unless it, or the nearest of its parents that exists, is not a directory."""
    for existing in (path, *path.parents):
        try:
            if not existing.exists():
                if existing.is_symlink():
                    raise _not_directory(
                        path,
                        existing,
                        "a symbolic link that leads nowhere (broken, or a loop)",
                        name,
                    )
                continue
            if existing.is_dir():
                return path
        except OSError as exc:  # a symlink loop, a name too long
            raise SettingError(
                f"{path} cannot be used as a directory ({_reason(exc)})",
                "point it at a directory (it is created if missing)",
                where=name,
            ) from None
        raise _not_directory(path, existing, "a file", name)
    return path


def writable_directory(path: Path, *, name: str) -> Path:
    """``path`` created if missing and proven writable (a file made and removed in it)."""
    not_a_file(path, name=name)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(
            f"{path} cannot be created ({_reason(exc)})",
            "point it at a directory you can write",
            where=name,
        ) from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".mlxstack-write-test-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise SettingError(
            f"{path} is not writable ({_reason(exc)})",
            "point it at a directory you can write",
            where=name,
        ) from None
    return path


def _not_directory(path: Path, existing: Path, what: str, name: str) -> SettingError:
    problem = (
        f"{path} is {what}, not a directory"
        if existing == path
        else f"{path} cannot be a directory: {existing} is {what}"
    )
    return SettingError(
        problem,
        "point it at a directory (it is created if missing)",
        where=name,
    )


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _shown(text: str) -> str:
    """The value as the user wrote it, quoted and cut short (it may be anything)."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    return repr(shown)
