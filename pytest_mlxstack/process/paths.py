"""Where pytest-mlxstack keeps its state, resolved the same way by the plugin and the CLI."""

from __future__ import annotations

import os
import re
from pathlib import Path

HOME_ENV = "MLXSTACK_HOME"
CACHE_ENV = "MLXSTACK_CACHE_DIR"
MATRIX_ENV = "MLXSTACK_MATRIX_DIR"


def default_home() -> Path:
    """``$MLXSTACK_HOME``, else ``~/.mlxstack``: the pid registry and service logs live here."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".mlxstack").expanduser()


def default_cache_dir() -> Path:
    """``$MLXSTACK_CACHE_DIR``, else the user's cache directory: models persist across runs."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mlxstack" / "models"


def default_matrix_dir() -> Path:
    """``$MLXSTACK_MATRIX_DIR``, else ``./matrices`` relative to where the run starts."""
    return Path(os.environ.get(MATRIX_ENV) or "matrices").expanduser()


def safe_file_name(name: str) -> str:
    """``name`` usable as (part of) a file name: anything but ``[A-Za-z0-9_.-]`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "service"
