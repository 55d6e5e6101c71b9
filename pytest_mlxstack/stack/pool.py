"""One server per (kind, model, flags) for a whole test run, shared across processes.

The pool's directory holds a ledger (``pool.json``) that every process of the run reads and
writes under a file lock: xdist workers of one session get the same directory from the
controller. The first process that asks for a (model, flags) starts the server through its own
``ServiceManager`` and becomes its owner; the others find it in the ledger and add themselves
as users. A process leaving the pool first gives up the servers it only used, then waits until
nobody else uses the ones it owns and stops those. Dead users (a crashed worker) are dropped,
so nobody waits forever. The ledger also counts starts per (model, flags), so a matrix can
show that each model was loaded once, or that a server died and came back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

from pytest_mlxstack.process.atomic import write_json_atomic
from pytest_mlxstack.process.proctree import ProcessIdentity
from pytest_mlxstack.process.registry import Owner
from pytest_mlxstack.process.services import ManagedService, ServiceManager
from pytest_mlxstack.stack.models import ResolvedModel
from pytest_mlxstack.stack.servers import (
    KIND_LABEL,
    ServerKey,
    TierServer,
    server_key,
    start_server,
)
from pytest_mlxstack.stack.spec import TierSpec

LEDGER = "pool.json"
POLL_S = 0.2
DEFAULT_RELEASE_WAIT_S = 3600.0  # how long an owner waits for other users before stopping


@dataclass(frozen=True)
class PoolStart:
    """How often the pool started one server (more than once: it had died meanwhile)."""

    model_label: str
    served_name: str
    args: tuple[str, ...]
    starts: int
    kind: str = "vllm-mlx"


class ServerPool:
    """Servers (of any kind) shared by every stack and test of a run (and its xdist workers).

    ``serve`` returns the running server for a tier's (model, flags), starting it if no
    process of the run has. ``close`` releases this process's share (see the module doc).
    """

    def __init__(
        self,
        manager: ServiceManager,
        directory: Path,
        *,
        release_wait: float = DEFAULT_RELEASE_WAIT_S,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.manager = manager
        self.on_progress = on_progress or (lambda message: None)
        self.directory = Path(directory)
        self.release_wait = release_wait
        self.me = Owner.current()
        self._owned: dict[str, str] = {}  # key digest -> service name in our manager
        self._used: set[str] = set()
        self._lock = threading.Lock()  # guards the two sets above and the lock table
        self._starting: dict[str, threading.Lock] = {}  # key digest -> held while starting it
        self.directory.mkdir(parents=True, exist_ok=True)

    # -- serving ---------------------------------------------------------------------------

    def serve(
        self,
        tier: TierSpec,
        model: ResolvedModel,
        *,
        on_launch: Callable[[ManagedService], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> TierServer:
        """The shared server for this tier's model and flags (started if needed).

        Several threads may serve different models at once (each model's start waits only
        for itself); ``on_launch`` hears the server as soon as its port is known (a server
        found running: at once), ``cancel`` calls a start off (``ServiceManager.start``).
        """
        key = server_key(tier, model)
        digest = _digest(key)
        startup_s = None
        with self._start_lock(digest):
            service = self._reuse(digest)
            if service is None:
                with FileLock(str(self.directory / f"start-{digest}.lock")):
                    service = self._reuse(digest)  # another process may have just started it
                    if service is None:
                        self.on_progress(
                            f"loading {model.label} in {key.kind} ({' '.join(key.args)})"
                        )
                        begun = time.monotonic()
                        service = self._start(digest, key, tier, model, on_launch, cancel)
                        startup_s = round(time.monotonic() - begun, 3)
                        self.on_progress(
                            f"{model.label} ready at {service.url} in {startup_s:.1f} s"
                        )
        if startup_s is None and on_launch is not None:
            on_launch(service)
        return TierServer(
            tier.name,
            model.served_name,
            model.label,
            service,
            pooled=True,
            startup_s=startup_s,
            kind=key.kind,
        )

    def _start_lock(self, digest: str) -> threading.Lock:
        with self._lock:
            return self._starting.setdefault(digest, threading.Lock())

    def _reuse(self, digest: str) -> ManagedService | None:
        with self._ledger() as ledger:
            entry = ledger["servers"].get(digest)
            if entry is None or not _usable(entry):
                return None
            if not any(_same(user, self.me) for user in entry["users"]):
                entry["users"].append(_member(self.me))
            with self._lock:
                self._used.add(digest)
            return _service(entry)

    def _start(
        self,
        digest: str,
        key: ServerKey,
        tier: TierSpec,
        model: ResolvedModel,
        on_launch: Callable[[ManagedService], None] | None,
        cancel: threading.Event | None,
    ) -> ManagedService:
        with self._lock:
            stale = self._owned.pop(digest, None)
        if stale is not None:  # ours, but it died: forget it before starting again
            with contextlib.suppress(KeyError):
                self.manager.stop(stale)
            shutil.rmtree(self.directory / stale, ignore_errors=True)
        with self._lock:
            name = self._unique_name(model.served_name)
            self._owned[digest] = name  # claimed now, so no other thread takes the name
        labels = {KIND_LABEL: key.kind, "model": model.label, "pool": str(self.directory)}
        home = self.directory / name / "home"  # this server's own; every user shares it
        try:
            service = start_server(
                self.manager,
                name,
                key,
                tier.start_timeout,
                home,
                labels,
                on_launch=on_launch,
                cancel=cancel,
            )
        except BaseException:
            with self._lock:
                self._owned.pop(digest, None)
            raise
        with self._lock:
            self._used.add(digest)
        identity = ProcessIdentity(service.pid, _create_time(service.pid))
        with self._ledger() as ledger:
            ledger["servers"][digest] = {
                "service": _service_json(service),
                "create_time": identity.create_time,
                "owner": _member(self.me),
                "users": [_member(self.me)],
            }
            count = ledger["starts"].setdefault(
                digest,
                {
                    "model": model.label,
                    "served_name": key.served_name,
                    "args": list(key.args),
                    "starts": 0,
                    "kind": key.kind,
                },
            )
            count["starts"] += 1
        return service

    # -- reporting -------------------------------------------------------------------------

    def start_counts(self) -> list[PoolStart]:
        """Starts per (model, flags) across every process of the run, in first-start order."""
        return read_start_counts(self.directory)

    def starts_of(self, tier: TierSpec, model: ResolvedModel) -> int:
        """How often any process of the run started the server for this tier's model and
        flags (0: never; 2: it died and a later ``serve`` started it again)."""
        entry = _read_starts(self.directory).get(_digest(server_key(tier, model)))
        return int(entry["starts"]) if entry is not None else 0

    # -- leaving ---------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the pool: release what we only used, stop what we own once nobody else
        uses it (dead users do not count). Idempotent."""
        with self._lock, self._ledger() as ledger:
            for digest in self._used - set(self._owned):
                entry = ledger["servers"].get(digest)
                if entry is not None:
                    entry["users"] = [u for u in entry["users"] if not _same(u, self.me)]
            self._used &= set(self._owned)
        deadline = time.monotonic() + self.release_wait
        for digest, name in list(self._owned.items()):
            while not self._last_user(digest) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            with contextlib.suppress(KeyError):
                self.manager.stop(name)
            shutil.rmtree(self.directory / name, ignore_errors=True)  # its HOME, prefix cache
            with self._ledger() as ledger:
                ledger["servers"].pop(digest, None)
            del self._owned[digest]
            self._used.discard(digest)

    def _last_user(self, digest: str) -> bool:
        with self._ledger() as ledger:
            entry = ledger["servers"].get(digest)
            if entry is None:
                return True
            entry["users"] = [u for u in entry["users"] if _member_alive(u)]
            return all(_same(u, self.me) for u in entry["users"])

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _ledger(self) -> Iterator[dict[str, Any]]:
        with FileLock(str(self.directory / f"{LEDGER}.lock")):
            ledger = _read_ledger(self.directory)
            yield ledger
            write_json_atomic(self.directory / LEDGER, ledger)

    def _unique_name(self, served_name: str) -> str:
        """Service names are per manager; the pid keeps two processes' names apart in logs."""
        base = "pool-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in served_name)
        name, number = f"{base}-{os.getpid()}", 1
        while name in self.manager.services or name in self._owned.values():
            number += 1
            name = f"{base}-{os.getpid()}-{number}"
        return name


def read_start_counts(directory: Path) -> list[PoolStart]:
    """The start counts recorded in a pool directory (empty if no server was started)."""
    return [
        PoolStart(
            c["model"],
            c["served_name"],
            tuple(c["args"]),
            int(c["starts"]),
            c.get("kind", "vllm-mlx"),
        )
        for c in _read_starts(Path(directory)).values()
    ]


def _read_starts(directory: Path) -> dict[str, Any]:
    """The ledger's start counts by server digest, read under its lock (empty: no ledger)."""
    if not (directory / LEDGER).is_file():
        return {}
    with FileLock(str(directory / f"{LEDGER}.lock")):
        return dict(_read_ledger(directory)["starts"])


def _read_ledger(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / LEDGER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    data.setdefault("servers", {})
    data.setdefault("starts", {})
    return dict(data)


def _digest(key: ServerKey) -> str:
    text = json.dumps([key.kind, str(key.model), key.served_name, list(key.args), key.port])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _member(owner: Owner) -> dict[str, Any]:
    return {"pid": owner.pid, "create_time": owner.create_time}


def _same(member: dict[str, Any], owner: Owner) -> bool:
    return bool(member["pid"] == owner.pid and member["create_time"] == owner.create_time)


def _member_alive(member: dict[str, Any]) -> bool:
    return Owner("process", member["pid"], member["create_time"]).is_alive()


def _usable(entry: dict[str, Any]) -> bool:
    """The server still runs and the process that owns it (and will stop it) too."""
    pid = entry["service"]["pid"]
    return ProcessIdentity(pid, entry["create_time"]).find() is not None and _member_alive(
        entry["owner"]
    )


def _create_time(pid: int) -> float:
    return float(psutil.Process(pid).create_time())


def _service_json(service: ManagedService) -> dict[str, Any]:
    return {
        "name": service.name,
        "port": service.port,
        "pid": service.pid,
        "url": service.url,
        "log_path": str(service.log_path),
        "argv": list(service.argv),
    }


def _service(entry: dict[str, Any]) -> ManagedService:
    data = entry["service"]
    return ManagedService(
        name=data["name"],
        port=int(data["port"]),
        pid=int(data["pid"]),
        url=data["url"],
        log_path=Path(data["log_path"]),
        argv=tuple(data["argv"]),
    )
