"""The pid registry: one JSON file per running service under ``<home>/run/``.

It lets a later session clean up after an earlier one that was SIGKILLed or crashed (its
services would otherwise run forever, holding ports and memory), and lets ``mlxstack
status/down`` see stacks started with ``mlxstack up --detach``. Every record carries the
service's start time and command line, so a pid the kernel has reused is never signalled, and
its owner, so a session only reaps services whose owning process is gone. Under xdist the owner
is a worker and the record also names the session's controller: a worker can outlive a
SIGKILLed controller by a minute, and its services are orphans from the moment the controller
is gone. Detached stacks have no owning session and are stopped only by ``mlxstack down``.

A registry can also follow other homes (``link``): the services of a test that used its own
home (the ``mlx_home`` fixture) are still reaped by the next session after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from pytest_mlxstack.process.atomic import write_json_atomic
from pytest_mlxstack.process.paths import safe_file_name
from pytest_mlxstack.process.proctree import (
    CREATE_TIME_TOLERANCE_S,
    ProcessIdentity,
    TreeStopResult,
    collect_tree,
    terminate_tree,
    terminate_trees,
)

OwnerKind = Literal["pytest", "process", "detached"]


@dataclass(frozen=True)
class Owner:
    """Who is responsible for stopping a service: a live process, or nobody (detached).

    ``session`` is the process the owner works for, when that is another one (the controller
    of an xdist worker): the owner counts as gone as soon as either of them is.
    """

    kind: OwnerKind
    pid: int | None = None
    create_time: float | None = None
    session: Owner | None = None

    @classmethod
    def current(cls, kind: OwnerKind = "process", *, session: Owner | None = None) -> Owner:
        """This process (``kind="pytest"`` for a test session), working for ``session``."""
        proc = psutil.Process()
        return cls(kind=kind, pid=proc.pid, create_time=proc.create_time(), session=session)

    @classmethod
    def detached(cls) -> Owner:
        """No owner: left running on purpose (``mlxstack up --detach``)."""
        return cls(kind="detached")

    def is_alive(self) -> bool:
        """Whether the owning process (and the session it works for) still runs; detached
        stacks always count as owned. A pid now used by another process counts as gone."""
        if self.kind == "detached":
            return True
        if self.session is not None and not self.session.is_alive():
            return False
        if self.pid is None or self.create_time is None:
            return False
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return abs(proc.create_time() - self.create_time) <= CREATE_TIME_TOLERANCE_S
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:
            return True  # someone else's process with that pid: not provably dead, leave it

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; ``session`` only when there is one."""
        data: dict[str, Any] = {"kind": self.kind, "pid": self.pid, "create_time": self.create_time}
        if self.session is not None:
            data["session"] = self.session.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Owner:
        session = data.get("session")
        return cls(
            kind=data["kind"],
            pid=None if data.get("pid") is None else int(data["pid"]),
            create_time=None if data.get("create_time") is None else float(data["create_time"]),
            session=cls.from_json(session) if isinstance(session, dict) else None,
        )


@dataclass(frozen=True)
class ServiceRecord:
    """One started service, as written to ``<home>/run/<name>-<pid>.json``."""

    name: str
    pid: int
    create_time: float
    cmdline: tuple[str, ...]
    port: int
    url: str
    log_path: str
    owner: Owner
    marker: str = ""
    started_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> ProcessIdentity:
        return ProcessIdentity(self.pid, self.create_time, self.cmdline)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cmdline"] = list(self.cmdline)
        data["owner"] = self.owner.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            cmdline=tuple(str(part) for part in data["cmdline"]),
            port=int(data["port"]),
            url=str(data["url"]),
            log_path=str(data["log_path"]),
            owner=Owner.from_json(data["owner"]),
            marker=str(data.get("marker", "")),
            started_at=float(data.get("started_at", 0.0)),
            labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        )


class PidRegistry:
    """Records of started services under ``<home>/run/``; safe to share between processes."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)
        self.run_dir = self.home / "run"
        self.links_dir = self.run_dir / "links"

    def add(self, record: ServiceRecord) -> Path:
        """Write ``record`` atomically (a reader never sees half a file)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self._path(record)
        write_json_atomic(path, record.to_json())
        return path

    def remove(self, record: ServiceRecord) -> None:
        """Forget ``record`` (nothing happens if it is already gone)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(record).unlink()

    def records(self) -> list[ServiceRecord]:
        """Every readable record, oldest first. Unreadable files are skipped, not fatal."""
        if not self.run_dir.is_dir():
            return []
        found: list[ServiceRecord] = []
        for path in sorted(self.run_dir.glob("*.json")):
            if path.name.startswith(".tmp-"):
                continue
            try:
                found.append(ServiceRecord.from_json(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda r: (r.started_at, r.name))

    def is_alive(self, record: ServiceRecord) -> bool:
        """Whether the recorded process still runs (same pid, start time and command line)."""
        return record.identity.find() is not None

    def stop(self, record: ServiceRecord, grace_period: float = 10.0) -> TreeStopResult:
        """Stop the recorded service's whole tree (if it is still the process we started)
        and forget the record. A reused pid is left alone; only the record is dropped."""
        root = record.identity.find()
        procs = collect_tree(root, marker=record.marker or None, not_before=record.create_time)
        result = terminate_tree(procs, grace_period)
        self.remove(record)
        return result

    def orphans(self) -> list[ServiceRecord]:
        """Records whose owning session is gone (detached stacks are never orphans)."""
        return [r for r in self.records() if not r.owner.is_alive()]

    def reap_orphans(self, grace_period: float = 10.0) -> list[ServiceRecord]:
        """Stop the services of dead sessions that still run; drop their records either way.
        Linked homes are reaped too, and a link whose owner is gone is dropped afterwards.
        All orphans are stopped together (``terminate_trees``): however many ignore SIGTERM,
        the reap costs one grace period.

        Returns the records whose processes were still running and had to be stopped.
        """
        plan: list[tuple[PidRegistry, ServiceRecord, list[psutil.Process]]] = []
        done_links: list[Path] = []
        self._plan_reap(plan, done_links, seen=set())
        results = terminate_trees([procs for _, _, procs in plan], grace_period)
        reaped: list[ServiceRecord] = []
        for (registry, record, _), result in zip(plan, results, strict=True):
            registry.remove(record)
            if result.signalled:
                reaped.append(record)
        for path in done_links:
            path.unlink(missing_ok=True)
        return reaped

    def _plan_reap(
        self,
        plan: list[tuple[PidRegistry, ServiceRecord, list[psutil.Process]]],
        done_links: list[Path],
        seen: set[Path],
    ) -> None:
        """Each orphan's tree (captured before anything is signalled), here and in linked
        homes, and the links to drop once they are reaped."""
        if self.home.absolute() in seen:
            return
        seen.add(self.home.absolute())
        for record in self.orphans():
            root = record.identity.find()
            procs = collect_tree(root, marker=record.marker or None, not_before=record.create_time)
            plan.append((self, record, procs))
        for path, home, owner in self._links():
            with contextlib.suppress(OSError):
                PidRegistry(home)._plan_reap(plan, done_links, seen)
                if not owner.is_alive():
                    done_links.append(path)

    def link(self, home: Path | str, owner: Owner) -> Path:
        """Have ``reap_orphans`` here also reap the registry of ``home`` (a home a test used
        for itself), until ``unlink(home)`` or until ``owner`` is gone and it was reaped."""
        self.links_dir.mkdir(parents=True, exist_ok=True)
        path = self._link_path(home)
        write_json_atomic(path, {"home": str(Path(home)), "owner": owner.to_json()})
        return path

    def unlink(self, home: Path | str) -> None:
        """Stop following ``home`` (nothing happens if it was not linked)."""
        self._link_path(home).unlink(missing_ok=True)

    def _links(self) -> list[tuple[Path, Path, Owner]]:
        if not self.links_dir.is_dir():
            return []
        found = []
        for path in sorted(self.links_dir.glob("*.json")):
            try:
                data = json.loads(path.read_text("utf-8"))
                found.append((path, Path(data["home"]), Owner.from_json(data["owner"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def _link_path(self, home: Path | str) -> Path:
        digest = hashlib.sha256(str(Path(home).absolute()).encode()).hexdigest()[:16]
        return self.links_dir / f"{digest}.json"

    def _path(self, record: ServiceRecord) -> Path:
        safe = safe_file_name(record.name)
        return self.run_dir / f"{safe}-{record.pid}.json"
