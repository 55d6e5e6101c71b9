"""What ``mlxstack status/logs/down`` know about stacks: the pid registry under the home.

A stack started by ``mlxstack up`` labels each of its services ``origin=mlxstack-cli`` and
``stack=<id>``; ``down`` stops only such services (never a pytest session's, never a process the
registry cannot prove is still the one we started). Each CLI stack keeps its files under
``<home>/stacks/<id>/``: the isolated HOME of its processes, the LiteLLM config and the master
key (mode 0600), all removed by ``down``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_mlxstack.process.atomic import write_text_atomic
from pytest_mlxstack.process.ports import LOOPBACK, http_status, port_is_free
from pytest_mlxstack.process.registry import PidRegistry, ServiceRecord
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.kinds import KINDS
from pytest_mlxstack.stack.masterkey import MasterKey, write_key_file
from pytest_mlxstack.stack.servers import (
    KIND_LABEL,
    LITELLM_HEALTH,
    LITELLM_KIND,
    VLLM_HEALTH,
    VLLM_KIND,
)

ORIGIN_LABEL = "origin"
CLI_ORIGIN = "mlxstack-cli"
STACKS_DIR = "stacks"
KEY_FILE = "master-key"
STABLE_DIR = "stable"
PORT_FILE = "litellm-port"
HEALTH_TIMEOUT_S = 1.0


def stack_directory(home: Path, stack_id: str) -> Path:
    return home / STACKS_DIR / stack_id


def key_file(home: Path, stack_id: str) -> Path:
    return stack_directory(home, stack_id) / KEY_FILE


@dataclass(frozen=True)
class StatusRow:
    """One line of ``mlxstack status``."""

    service: str
    pid: int
    port: int
    health: str  # ok, failing, gone
    uptime_s: float | None
    model: str
    stack: str
    owner: str
    owner_gone: bool = False  # the owning session exited without stopping it

    @property
    def url(self) -> str:
        """The service's OpenAI-compatible base URL (vllm-mlx and LiteLLM both serve /v1)."""
        return f"http://{LOOPBACK}:{self.port}/v1"


def status_rows(home: Path, *, now: float | None = None) -> list[StatusRow]:
    """Every service recorded under ``home``, with a live health check of each."""
    registry = PidRegistry(home)
    now = time.time() if now is None else now
    rows = []
    for record in registry.records():
        alive = registry.is_alive(record)
        health = _health(record) if alive else "gone"
        rows.append(
            StatusRow(
                service=record.name,
                pid=record.pid,
                port=record.port,
                health=health,
                uptime_s=max(0.0, now - record.started_at) if alive and record.started_at else None,
                model=record.labels.get("model", ""),
                stack=record.labels.get("stack", ""),
                owner=_owner(record),
                owner_gone=not record.owner.is_alive(),
            )
        )
    return rows


def cli_records(home: Path) -> list[ServiceRecord]:
    """The services ``mlxstack up`` started under ``home``."""
    return [r for r in PidRegistry(home).records() if r.labels.get(ORIGIN_LABEL) == CLI_ORIGIN]


def stop_cli_stacks(home: Path, *, grace_period: float) -> list[ServiceRecord]:
    """Stop every service ``mlxstack up`` started (proxy first), then remove the stacks' files.

    Returns the records of processes that were still running. Safe to call again: with
    nothing recorded it does nothing.
    """
    registry = PidRegistry(home)
    records = sorted(cli_records(home), key=lambda r: r.labels.get(KIND_LABEL) != LITELLM_KIND)
    stopped = []
    for record in records:
        if registry.is_alive(record):
            stopped.append(record)
        registry.stop(record, grace_period)  # a reused pid is left alone, the record dropped
    for stack_id in sorted({r.labels.get("stack", "") for r in records} - {""}):
        remove_stack_files(home, stack_id)
    return stopped


def remove_stack_files(home: Path, stack_id: str) -> None:
    """The stack's HOME, config and key; the service logs under ``<home>/logs`` stay."""
    directory = stack_directory(home, stack_id)
    if directory.parent == home / STACKS_DIR and directory.is_dir():
        shutil.rmtree(directory, ignore_errors=True)


def find_service(home: Path, name: str) -> ServiceRecord:
    """The recorded service called ``name`` (or ``STACK/name``); the newest if several match."""
    stack, _, service = name.rpartition("/")
    records = PidRegistry(home).records()
    matches = [
        r
        for r in records
        if (r.name == service or r.labels.get("tier") == service)
        and (not stack or r.labels.get("stack") == stack)
    ]
    if not matches:
        known = ", ".join(sorted({r.name for r in records})) or "none"
        raise StackError(
            f"No service '{name}' is recorded under {home} (services: {known}); run "
            "'mlxstack status' to see what runs"
        )
    return matches[-1]


def known_secrets(home: Path, stack_ids: Iterable[str]) -> list[str]:
    """The master keys of these stacks, so that text shown to the user can be redacted."""
    found = []
    for stack_id in stack_ids:
        try:
            found.append(key_file(home, stack_id).read_text(encoding="utf-8").strip())
        except OSError:
            continue
    return [key for key in found if key]


def _health(record: ServiceRecord) -> str:
    kind = record.labels.get(KIND_LABEL, VLLM_KIND)
    path = (
        LITELLM_HEALTH
        if kind == LITELLM_KIND
        else KINDS[kind].health_path
        if kind in KINDS
        else VLLM_HEALTH
    )
    status = http_status(record.port, path, HEALTH_TIMEOUT_S)
    if status is None:
        return "not answering"
    return "ok" if 200 <= status < 300 else f"failing ({status})"


def _owner(record: ServiceRecord) -> str:
    """Who stops the service; ``(gone)`` when that process has exited (a killed session):
    nobody will, until the next session with this home reaps it."""
    if record.owner.kind == "detached":
        return "detached"
    text = f"{record.owner.kind} {record.owner.pid}"
    return text if record.owner.is_alive() else f"{text} (gone)"


# -- a stable endpoint across restarts (mlxstack up --stable) ------------------------------


def stable_key(home: Path) -> MasterKey:
    """The master key ``mlxstack up --stable`` reuses: read from ``<home>/stable/master-key``,
    created there (mode 0600) the first time, so an agent's configuration stays valid."""
    path = home / STABLE_DIR / KEY_FILE
    try:
        return MasterKey(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        key = MasterKey.generate()
        write_key_file(path, key)
        return key


def stable_port(home: Path) -> int | None:
    """The LiteLLM port the last ``--stable`` stack used, if it is free again; else ``None``."""
    try:
        port = int((home / STABLE_DIR / PORT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return port if 1024 <= port <= 65535 and port_is_free(port) else None


def remember_port(home: Path, port: int) -> None:
    write_text_atomic(home / STABLE_DIR / PORT_FILE, f"{port}\n")


@dataclass(frozen=True)
class Endpoint:
    """What a client needs to reach a running CLI stack: base URL, key, model names."""

    stack: str
    base_url: str
    api_key: str = field(repr=False)  # never in a traceback's locals
    models: list[str] = field(default_factory=list)
    server: str = ""  # the kind of the stack's tiers when they share one (vllm-mlx, mlx-lm)
    model_labels: list[str] = field(default_factory=list)  # tiny-chat:bf16, per tier


def running_endpoints(home: Path) -> list[Endpoint]:
    """The OpenAI-compatible endpoints of the CLI stacks running under ``home``, newest first:
    LiteLLM with the stack's key, or (``--no-litellm``) each tier's own server."""
    registry = PidRegistry(home)
    live = [r for r in cli_records(home) if registry.is_alive(r)]
    found = []
    for record in sorted(live, key=lambda r: r.started_at or 0.0, reverse=True):
        stack = record.labels.get("stack", "")
        base_url = f"http://{LOOPBACK}:{record.port}/v1"
        tiers = [
            r
            for r in live
            if r.labels.get("stack") == stack and r.labels.get(KIND_LABEL) != LITELLM_KIND
        ]
        kinds = {r.labels.get(KIND_LABEL, "") for r in tiers}
        server = kinds.pop() if len(kinds) == 1 else ""
        if record.labels.get(KIND_LABEL) == LITELLM_KIND:
            keys = known_secrets(home, [stack])
            if keys:
                models = record.labels.get("model", "").split(", ")
                labels = [r.labels.get("model", "") for r in tiers]
                found.append(Endpoint(stack, base_url, keys[0], models, server, labels))
        elif not any(
            r.labels.get("stack") == stack and r.labels.get(KIND_LABEL) == LITELLM_KIND
            for r in live
        ):
            own = [record.labels.get("model", "")]
            kind = record.labels.get(KIND_LABEL, "")
            found.append(Endpoint(stack, base_url, "none", [], kind, own))  # asks /v1/models
    return found
