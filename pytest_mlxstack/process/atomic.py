"""All-or-nothing file writes: a reader sees the old file or the new one, never half of one.

Every writer of state (the pid registry, the model cache's markers, the server pool's ledger,
matrices, exported schemas) goes through here, so there is one place that gets it right.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[str]], None], *, mode: int | None = None) -> None:
    """Create or replace ``path`` with what ``write`` puts into the file.

    The data goes to a temporary file beside ``path``, is fsynced, then renamed over it; on
    any failure the temporary file is removed and ``path`` is left as it was. The new file
    gets ``mode``, by default the permissions a plain ``open()`` would give it; the temporary
    file is 0600 from creation on, so a secret is never readable by others, not even briefly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(path) as (handle, temp_path):
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
        os.chmod(handle.fileno(), (0o666 & ~_umask()) if mode is None else mode)
        handle.close()
        os.replace(temp_path, path)
    _fsync_directory(path.parent)


def write_text_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    def put(handle: IO[str]) -> None:
        handle.write(text)

    atomic_write(path, put, mode=mode)


def write_json_atomic(path: Path, data: Any, *, indent: int = 2) -> None:
    def dump(handle: IO[str]) -> None:
        json.dump(data, handle, indent=indent, allow_nan=False)
        handle.write("\n")

    atomic_write(path, dump)


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[tuple[IO[str], Path]]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp_path = Path(name)
    handle = os.fdopen(fd, "w", encoding="utf-8")
    try:
        yield handle, temp_path
    except BaseException:
        handle.close()
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
    finally:
        handle.close()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform allows opening a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
