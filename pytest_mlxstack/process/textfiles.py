"""Reading a text file a user named, in bounded time, with one phrase for whatever it really is.

``Path.read_text`` on a named pipe waits for a writer forever, on ``/dev/zero`` until memory
runs out; a symlink loop reads as "does not exist". The file is opened without blocking, looked
at (``fstat`` on the open file, so it cannot be swapped in between) and read only when it is a
regular file of a sensible size. Callers turn ``FileReadError.problem`` into their own sentence.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pytest_mlxstack.errors import MlxStackError

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class FileReadError(MlxStackError):
    """Why a file cannot be read as text: ``problem`` completes "<path> ..." (``is a named
    pipe, not a regular file``); the caller words the sentence around it."""


def read_text_file(path: Path, *, max_bytes: int) -> str:
    """The UTF-8 text of the regular file ``path`` (symlinks followed), at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise FileReadError(_open_problem(path, exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise FileReadError("is a directory, not a file")
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise FileReadError(f"is {kind}, not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise FileReadError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise FileReadError(f"is larger than {_size(max_bytes)}, far more than such a file holds")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileReadError(
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _open_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop (it leads back to itself)"
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "does not exist"
    if exc.errno == errno.ENOTDIR:
        return "does not exist (a folder in its path is a file)"
    try:  # a socket cannot even be opened (ENXIO): say what it is
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFREG
    kind = next((name for test, name in _KINDS if test(mode)), None)
    if kind is not None:
        return f"is {kind}, not a regular file"
    return f"cannot be read ({exc.strerror or type(exc).__name__})"


def _size(count: int) -> str:
    return f"{count / 2**20:g} MiB" if count >= 2**20 else f"{count} bytes"
