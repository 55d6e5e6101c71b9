"""Loopback TCP ports that no two holders get at the same time, across processes.

Binding to port 0 tells us a port that is free *now*; it does not reserve it. Two xdist workers
(or two pytest runs, or pytest and ``mlxstack up``) asking at once could be told the same port.
So every allocation also takes an exclusive ``flock`` on ``<state_dir>/<port>.lock``: a held
lock marks the port as taken for everyone sharing ``state_dir``, and the kernel drops it when
the holder exits, so a crashed process can never leave a port reserved forever.

A lock only says who holds a port *now*. Allocators that share a session (a ``PortSession``:
the xdist workers of one pytest session) also never hand out a port that any of them handed
out earlier in that session, held or released: each allocation is claimed in the session's
ledger, ``<state_dir>/sessions/<id>/<port>``, so a later test on another worker never meets the
lingering connections of an earlier test's server. The session's creator holds a lock on the
ledger; once it exits, the next ``PortSession`` in that directory deletes the ledger.

What this cannot prevent is an unrelated program binding the port between ``allocate()`` and
the service's own bind; ``services.ServiceManager`` detects that and retries on a new port.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import http.client
import os
import shutil
import socket
import threading
import uuid
from pathlib import Path

from pytest_mlxstack.errors import MlxStackError

LOOPBACK = "127.0.0.1"


class PortAllocationError(MlxStackError, RuntimeError):
    """No free port could be reserved (the state directory is unusable or ports ran out)."""


SESSIONS_DIR = "sessions"
_OWNER_LOCK = ".owner"


class PortSession:
    """A span in which no port is handed out twice by the allocators that share it.

    Create one in the process that runs the whole span (a pytest controller), hand ``id`` to
    the others (its xdist workers) and give it to each ``PortAllocator(session=...)``. The
    creator holds a lock on the ledger until ``close()`` (which deletes it) or until it exits;
    creating a session also deletes the ledgers of sessions whose creator is gone.
    """

    def __init__(self, state_dir: Path | str) -> None:
        sessions = Path(state_dir) / SESSIONS_DIR
        self.id = uuid.uuid4().hex
        try:
            sessions.mkdir(parents=True, exist_ok=True)
            _prune_sessions(sessions)
            # Built under a hidden name and renamed once locked, so no pruner takes it for dead.
            building = sessions / f".new-{self.id}"
            building.mkdir()
            self._fd: int | None = os.open(
                building / _OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(building, sessions / self.id)
        except OSError as exc:
            raise PortAllocationError(
                f"cannot create the port session directory in {sessions}: {exc.strerror}; "
                "point --mlx-home (or MLXSTACK_HOME) at a writable directory"
            ) from None
        self.path = sessions / self.id

    def close(self) -> None:
        """End the session: its ports may be handed out again."""
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None


def _prune_sessions(sessions: Path) -> None:
    """Delete the ledgers whose creator is gone (its lock is free)."""
    for ledger in sessions.iterdir():
        if ledger.name.startswith("."):
            continue
        try:
            fd = os.open(ledger / _OWNER_LOCK, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its creator still runs
        shutil.rmtree(ledger, ignore_errors=True)
        os.close(fd)


class PortAllocator:
    """Hands out loopback ports, unique among all processes that share ``state_dir``.

    One allocator never hands out a port twice while other ports are available, so a service
    restarted in the same session never meets its predecessor's lingering connections. With a
    ``session`` id (``PortSession.id``) that holds for every allocator sharing the session.
    """

    def __init__(
        self, state_dir: Path | str, *, attempts: int = 200, session: str | None = None
    ) -> None:
        self.state_dir = Path(state_dir)
        self.session = session
        self._attempts = attempts
        self._held: dict[int, int] = {}  # port -> fd of its lock file
        self._handed_out: set[int] = set()
        self._lock = threading.Lock()

    def allocate(self) -> int:
        """Reserve a free loopback port and return it; ``release`` gives it back."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PortAllocationError(
                f"cannot create the port state directory {self.state_dir}: {exc.strerror}; "
                "point --mlx-home (or MLXSTACK_HOME) at a writable directory"
            ) from None
        with self._lock:
            for _ in range(self._attempts):
                port = _free_port()
                if port in self._handed_out:  # held ports are in it too
                    continue
                fd = self._try_lock(port)
                if fd is None:
                    continue
                try:
                    claimed = self._claim_in_session(port)
                except PortAllocationError:
                    self._unlock(port, fd)
                    raise
                self._handed_out.add(port)  # claimed here or by another allocator: never again
                if not claimed:
                    self._unlock(port, fd)
                    continue
                self._held[port] = fd
                return port
        raise PortAllocationError(
            f"no free loopback port after {self._attempts} attempts "
            f"(state directory {self.state_dir})"
        )

    def release(self, port: int) -> None:
        """Give ``port`` back. Releasing a port this allocator does not hold does nothing."""
        with self._lock:
            fd = self._held.pop(port, None)
        if fd is not None:
            self._unlock(port, fd)

    def release_all(self) -> None:
        """Give back every port this allocator holds."""
        for port in list(self.held):
            self.release(port)

    @property
    def held(self) -> frozenset[int]:
        """Ports this allocator currently holds."""
        with self._lock:
            return frozenset(self._held)

    def is_taken(self, port: int) -> bool:
        """Whether any process sharing ``state_dir`` holds ``port`` right now."""
        if port in self.held:
            return True
        fd = self._try_lock(port)
        if fd is None:
            return True
        self._unlock(port, fd)
        return False

    def _lock_path(self, port: int) -> Path:
        return self.state_dir / f"{port}.lock"

    def _unlock(self, port: int, fd: int) -> None:
        # Unlink while still holding the lock; anyone who opened the old file notices the
        # inode change in ``_try_lock`` and retries, so no two holders can co-exist.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._lock_path(port))
        os.close(fd)

    def _claim_in_session(self, port: int) -> bool:
        """Record ``port`` in the session's ledger; ``False`` if it was handed out before."""
        if self.session is None:
            return True
        ledger = self.state_dir / SESSIONS_DIR / self.session
        try:
            os.close(os.open(ledger / str(port), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            return False
        except FileNotFoundError:
            raise PortAllocationError(
                f"port session {self.session} is not open in {self.state_dir} (it ended, or "
                "was never created); pass the id of a live PortSession"
            ) from None
        except OSError as exc:
            raise PortAllocationError(
                f"cannot record port {port} in the session ledger {ledger}: {exc.strerror}; "
                "point --mlx-home (or MLXSTACK_HOME) at a writable directory"
            ) from None
        return True

    def _try_lock(self, port: int) -> int | None:
        """An fd holding the exclusive lock of ``port``, or ``None`` when someone else has it."""
        path = self._lock_path(port)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return None
                raise
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())  # for humans inspecting the dir
                return fd
            os.close(fd)  # the holder released and unlinked it meanwhile: lock the new file


def _free_port() -> int:
    """A port the kernel considers free on the loopback interface at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``port`` on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def http_status(port: int, path: str, timeout: float) -> int | None:
    """The HTTP status ``GET path`` on the loopback ``port`` gets, or ``None`` when nothing
    answers (yet): the one health request of the package."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return int(response.status)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
