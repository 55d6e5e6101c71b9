"""SIGTERM to pytest as an orderly shutdown, also across xdist workers; Ctrl-C only once.

Without this, SIGTERM kills pytest on the spot: no fixture finalizes, no ``atexit`` hook runs,
and every service keeps running. The handler raises ``KeyboardInterrupt`` instead, so pytest
tears fixtures down and the services stop. Under xdist the controller also passes the signal
on to its workers (their pids are announced through a per-session folder handed over in
``workerinput``), since the controller's own shutdown would otherwise SIGKILL workers stuck
in a test, leaving their services behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import pytest

from pytest_mlxstack.process.leftovers import WORKER_DIR_PREFIX, claim
from pytest_mlxstack.process.proctree import ProcessIdentity
from pytest_mlxstack.process.registry import Owner
from pytest_mlxstack.wiring.options import hand_over, run_dir

WORKER_DIR_KEY = "worker_dir"


class SigtermShutdown:
    """Installs the handlers (main thread only), chains the previous ones, restores them later.

    The first SIGTERM or SIGINT starts the shutdown (a ``KeyboardInterrupt``); every later one
    is ignored, so repeated Ctrl-C cannot interrupt the cleanup that stops the services.
    """

    def __init__(self) -> None:
        self.previous: Any = None
        self.previous_sigint: Any = None
        self.installed = False
        self.fired = False
        self.worker_dir: Path | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread; atexit remains the fallback
        try:
            self.previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # pragma: no cover - not the main interpreter
            return
        self.installed = True
        if callable(signal.getsignal(signal.SIGINT)):  # not when started with SIGINT ignored
            self.previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def restore(self) -> None:
        if self.installed and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, self.previous)
            if self.previous_sigint is not None and not self.fired:
                # After a Ctrl-C, SIGINT stays ignored through the rest of the cleanup
                # (unconfigure, then the atexit stop of any service left).
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(signal.SIGINT, self.previous_sigint)
            self.installed = False
        if self.worker_dir is not None:
            shutil.rmtree(self.worker_dir, ignore_errors=True)
            self.worker_dir = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if callable(self.previous):  # SIG_DFL and SIG_IGN are enum members, not callables
            self.previous(signum, frame)
        if self.fired:
            return  # already shutting down: let the cleanup finish
        self.fired = True
        self._forward_to_workers()
        raise KeyboardInterrupt("SIGTERM received; stopping mlxstack services")

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.fired:
            return  # Ctrl-C again: the services are being stopped; let that finish
        self.fired = True
        if callable(self.previous_sigint):
            self.previous_sigint(signum, frame)  # Python's own: KeyboardInterrupt
        raise KeyboardInterrupt

    # -- xdist --------------------------------------------------------------------------------

    def controller_plugin(self) -> _WorkerDirHandover:
        """The plugin that tells each xdist worker where to announce itself."""
        self.worker_dir = Path(tempfile.mkdtemp(prefix=WORKER_DIR_PREFIX))
        claim(self.worker_dir, Owner.current("pytest"))  # a SIGKILL leaves it: see leftovers
        return _WorkerDirHandover(self.worker_dir)

    def _forward_to_workers(self) -> None:
        if self.worker_dir is None:
            return
        for path in self.worker_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text("utf-8"))
                identity = ProcessIdentity(int(data["pid"]), float(data["create_time"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            worker = identity.find()
            if worker is not None:
                with contextlib.suppress(psutil.Error):
                    worker.send_signal(signal.SIGTERM)


class _WorkerDirHandover:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def pytest_configure_node(self, node: Any) -> None:
        hand_over(node, WORKER_DIR_KEY, str(self.directory))


def announce_worker(config: pytest.Config) -> None:
    """On an xdist worker: record this process so the controller can pass SIGTERM on."""
    directory = run_dir(config, WORKER_DIR_KEY)
    if directory is None:
        return
    me = psutil.Process()
    name = str(getattr(config, "workerinput", {}).get("workerid", os.getpid()))
    with contextlib.suppress(OSError):
        tmp = directory / f".{name}.tmp"
        tmp.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time()}), "utf-8")
        os.replace(tmp, directory / f"{name}.json")
