"""Finding and stopping the whole process tree of a service we started, and nothing else.

A service is identified by its pid *and* its start time (and command line), so a pid the
kernel has since reused for an unrelated program is never signalled. Every service also gets
a random marker in its environment (``MLXSTACK_SERVICE_ID``); children inherit it, so a
grandchild that called ``setsid`` and was re-parented to init is still found, while a foreign
process can never carry it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psutil

MARKER_ENV = "MLXSTACK_SERVICE_ID"
# psutil derives start times from the boot time, which the kernel may report a second apart
# in different processes; the command line (and the marker) guard against a reused pid.
CREATE_TIME_TOLERANCE_S = 1.0
_POLL_S = 0.01


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells one process apart from a later one that got the same pid."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...] = ()

    def find(self) -> psutil.Process | None:
        """The live process this identity describes, or ``None`` (gone, or pid reused)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > CREATE_TIME_TOLERANCE_S:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if self.cmdline and tuple(proc.cmdline()) != self.cmdline:
                return None
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        except psutil.AccessDenied:
            return None  # not ours to touch
        return proc


def is_gone(proc: psutil.Process) -> bool:
    """Exited (a zombie counts: it holds no port and only waits for its parent to reap it)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.AccessDenied:
        return False


def marked_processes(marker: str, *, not_before: float = 0.0) -> list[psutil.Process]:
    """Live processes of this user whose environment carries ``MLXSTACK_SERVICE_ID=marker``.

    Only processes created after ``not_before`` (epoch seconds) are read, which keeps the scan
    cheap: a service's descendants are never older than the service.
    """
    uid = os.getuid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["create_time", "uids"]):
        try:
            info = proc.info
            if info["uids"] is None or info["uids"].real != uid:
                continue
            if (info["create_time"] or 0.0) < not_before - CREATE_TIME_TOLERANCE_S:
                continue
            if proc.pid == os.getpid():
                continue
            if proc.environ().get(MARKER_ENV) == marker and not is_gone(proc):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


def collect_tree(
    root: psutil.Process | None, *, marker: str | None = None, not_before: float = 0.0
) -> list[psutil.Process]:
    """The root, all its descendants, and any process carrying ``marker``: captured before
    anything is signalled, so children re-parented by a dying parent are not lost."""
    procs: dict[int, psutil.Process] = {}
    if root is not None and not is_gone(root):
        procs[root.pid] = root
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for child in root.children(recursive=True):
                procs.setdefault(child.pid, child)
    if marker:
        for proc in marked_processes(marker, not_before=not_before):
            procs.setdefault(proc.pid, proc)
    return list(procs.values())


@dataclass(frozen=True)
class TreeStopResult:
    """How a tree went: which pids needed SIGKILL, and any that outlived even that."""

    signalled: tuple[int, ...]
    killed: tuple[int, ...]
    survivors: tuple[int, ...]


def terminate_tree(procs: Sequence[psutil.Process], grace_period: float) -> TreeStopResult:
    """SIGTERM every process, wait up to ``grace_period`` for all to exit, SIGKILL the rest.

    Returns as soon as everything is gone: the wait polls every 10 ms, it never sleeps a
    fixed time.
    """
    return terminate_trees([procs], grace_period)[0]


def terminate_trees(
    trees: Sequence[Sequence[psutil.Process]], grace_period: float
) -> list[TreeStopResult]:
    """``terminate_tree`` for several trees at once: every process gets SIGTERM first, then
    one wait of at most ``grace_period`` covers them all, so N trees that ignore SIGTERM cost
    one grace period, not N. One result per tree, in order."""
    everything = [proc for tree in trees for proc in tree]
    _signal_all(everything, signal.SIGTERM)
    alive = wait_gone(everything, grace_period)
    killed = {p.pid for p in alive}
    if alive:
        _signal_all(alive, signal.SIGKILL)
        alive = wait_gone(alive, 5.0)
    survivors = {p.pid for p in alive}
    return [
        TreeStopResult(
            tuple(p.pid for p in tree),
            tuple(p.pid for p in tree if p.pid in killed),
            tuple(p.pid for p in tree if p.pid in survivors),
        )
        for tree in trees
    ]


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until all ``procs`` exited or ``timeout`` passed; return those still running."""
    alive = [p for p in procs if not is_gone(p)]
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        alive = [p for p in alive if not is_gone(p)]
    return alive


def _signal_all(procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        # psutil checks the pid still belongs to the process we captured (create time).
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)


def listening_ports(procs: Iterable[psutil.Process]) -> set[int] | None:
    """The TCP ports the given processes listen on; ``None`` when the system would not let us
    inspect any of them (so the answer would prove nothing)."""
    ports: set[int] = set()
    denied = inspected = 0
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            denied += 1
            continue
        inspected += 1
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN and conn.laddr:
                ports.add(int(conn.laddr.port))
    return None if denied and not inspected else ports
