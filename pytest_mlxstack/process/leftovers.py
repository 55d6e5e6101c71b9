"""Folders a session leaves when it is SIGKILLed, and removing them once their owner is gone.

A session writes per-run folders (the server pool under ``<home>/pools/<run>/``, the xdist
worker announcements under the temp directory) and removes them when it ends. SIGKILL gives it
no chance to, so each such folder names its owner in a small ``owner`` file, and the next
session removes the folders whose owner has provably exited, and only those: a folder
without an owner file, or whose owner still runs (or cannot be inspected), is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pytest_mlxstack.process.atomic import write_json_atomic
from pytest_mlxstack.process.registry import Owner

OWNER_FILE = "owner"  # no .json suffix: worker folders glob their members by *.json
POOLS_DIR = "pools"
WORKER_DIR_PREFIX = "mlxstack-workers-"


def claim(directory: Path, owner: Owner) -> Path:
    """Create ``directory`` (if needed) and record ``owner`` in it, unless one is recorded."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / OWNER_FILE
    if not path.exists():
        write_json_atomic(path, owner.to_json())
    return path


def owner_of(directory: Path) -> Owner | None:
    """The recorded owner of ``directory``; ``None`` when none is recorded or readable."""
    try:
        return Owner.from_json(json.loads((directory / OWNER_FILE).read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_abandoned(directory: Path) -> bool:
    """Whether ``directory`` names an owner and that owner is gone."""
    owner = owner_of(directory)
    return owner is not None and not owner.is_alive()


def remove_abandoned(candidates: Iterable[Path]) -> list[Path]:
    """Remove the candidate folders whose owner is gone (and only those); return them."""
    removed = []
    for directory in candidates:
        with contextlib.suppress(OSError):
            if directory.is_dir() and not directory.is_symlink() and is_abandoned(directory):
                shutil.rmtree(directory)
                removed.append(directory)
    return removed


def pool_dirs(home: Path) -> list[Path]:
    """Every run's pool folder under ``home``."""
    pools = home / POOLS_DIR
    return sorted(pools.iterdir()) if pools.is_dir() else []


def worker_dirs(temp_dir: Path | None = None) -> list[Path]:
    """This user's xdist worker-announcement folders in the temp directory."""
    base = Path(temp_dir or tempfile.gettempdir())
    found = []
    for path in sorted(base.glob(WORKER_DIR_PREFIX + "*")):
        with contextlib.suppress(OSError):
            if path.stat().st_uid == os.getuid():
                found.append(path)
    return found


def remove_session_leftovers(home: Path, temp_dir: Path | None = None) -> list[Path]:
    """The pool and worker folders of sessions that are gone, removed."""
    return remove_abandoned([*pool_dirs(home), *worker_dirs(temp_dir)])
