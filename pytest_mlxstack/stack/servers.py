"""Starting one tier's vllm-mlx, alone or through a pool that shares servers.

A ``ServerPool`` starts at most one vllm-mlx per (model folder, served name, flags, port) for as
long as it lives (a pytest session), whichever stack or test asks, and counts the starts per key
so that a matrix can show that a model was loaded once, or that a server died and came back.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from pytest_mlxstack.ports import port_is_free
from pytest_mlxstack.services import ManagedService, ServiceManager, ServiceStartError
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.flags import vllm_serve_args
from pytest_mlxstack.stack.models import ResolvedModel
from pytest_mlxstack.stack.spec import TierSpec

KIND_LABEL = "kind"
VLLM_KIND = "vllm-mlx"
LITELLM_KIND = "litellm"
VLLM_HEALTH = "/health"
LITELLM_HEALTH = "/health/liveliness"


@dataclass(frozen=True)
class ServerKey:
    """What makes two vllm-mlx servers interchangeable."""

    model: Path
    served_name: str
    args: tuple[str, ...]
    port: int | None  # only when the tier fixes it

    def describe(self, label: str) -> str:
        flags = " ".join(self.args) or "no extra flags"
        return f"{label} as {self.served_name} ({flags})"


@dataclass(frozen=True)
class TierServer:
    """A ready vllm-mlx serving one tier: where it listens and what clients must call it."""

    tier: str
    served_name: str
    model_label: str
    service: ManagedService
    pooled: bool = False

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"{self.service.url}/v1"

    @property
    def port(self) -> int:
        return self.service.port


@dataclass(frozen=True)
class PoolStart:
    """How often the pool started one server (more than once: it had died meanwhile)."""

    model_label: str
    served_name: str
    args: tuple[str, ...]
    starts: int
    port: int | None


def server_key(tier: TierSpec, model: ResolvedModel) -> ServerKey:
    args = vllm_serve_args(
        parsers=model.parsers,
        continuous_batching=tier.continuous_batching,
        paged_cache=tier.paged_cache,
        extra=tier.flags,
    )
    return ServerKey(model.path, model.served_name, args, tier.port)


def vllm_env(home: Path) -> dict[str, str]:
    """HOME (vllm-mlx persists its prefix cache under ``~/.cache``) and no Hub access:
    every model has been resolved to a local folder before the server starts."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "HF_HUB_OFFLINE": "1"}


def check_port_free(port: int | None, what: str) -> None:
    """Fail early, in one sentence, when a fixed port is already taken."""
    if port is not None and not port_is_free(port):
        raise StackError(
            f"Port {port} ({what}) is already in use on 127.0.0.1; stop the program holding "
            "it, choose another port, or use auto"
        )


def start_tier_server(
    manager: ServiceManager,
    service_name: str,
    tier: TierSpec,
    model: ResolvedModel,
    home: Path,
    labels: Mapping[str, str] = {},
) -> TierServer:
    """Start a dedicated vllm-mlx for ``tier`` (no pool); ``StackError`` if it fails."""
    key = server_key(tier, model)
    labels = {**labels, KIND_LABEL: VLLM_KIND, "tier": tier.name, "model": model.label}
    service = _start_vllm(manager, service_name, key, tier.start_timeout, home, labels)
    return TierServer(tier.name, model.served_name, model.label, service)


def _start_vllm(
    manager: ServiceManager,
    name: str,
    key: ServerKey,
    timeout: float,
    home: Path,
    labels: Mapping[str, str],
) -> ManagedService:
    check_port_free(key.port, f"service {name}")
    try:
        return manager.start_vllm(
            name,
            key.model,
            key.port,
            served_model_name=key.served_name,
            extra_args=key.args,
            env=vllm_env(home),
            timeout=timeout,
            labels=labels,
        )
    except ServiceStartError as exc:
        raise StackError(f"vllm-mlx for {name} did not start: {exc}") from exc


class ServerPool:
    """vllm-mlx servers shared by every stack and test of one session.

    ``serve`` returns the running server for the tier's (model, flags), starting it on first
    use, or again if it died. ``close`` stops them all; the pool never stops a server another
    component started.
    """

    def __init__(self, manager: ServiceManager, directory: Path) -> None:
        self.manager = manager
        self.directory = Path(directory)
        self._servers: dict[ServerKey, ManagedService] = {}
        self._labels: dict[ServerKey, str] = {}
        self._starts: dict[ServerKey, int] = {}
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def serve(self, tier: TierSpec, model: ResolvedModel) -> TierServer:
        """The shared server for this tier's model and flags (started if needed)."""
        key = server_key(tier, model)
        with self._lock:
            service = self._servers.get(key)
            if service is None or not self._alive(service):
                if service is not None:
                    self._forget(service)
                service = self._start(key, tier, model)
                self._servers[key] = service
                self._labels[key] = model.label
                self._starts[key] = self._starts.get(key, 0) + 1
        return TierServer(tier.name, model.served_name, model.label, service, pooled=True)

    def start_counts(self) -> list[PoolStart]:
        """Starts per (model, flags), in first-start order: the figure a matrix reports."""
        with self._lock:
            return [
                PoolStart(self._labels[key], key.served_name, key.args, count, key.port)
                for key, count in self._starts.items()
            ]

    @property
    def servers(self) -> list[ManagedService]:
        with self._lock:
            return list(self._servers.values())

    def close(self) -> None:
        """Stop every server of the pool (idempotent)."""
        with self._lock:
            services = list(self._servers.values())
            self._servers.clear()
        for service in services:
            self._forget(service)

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self, key: ServerKey, tier: TierSpec, model: ResolvedModel) -> ManagedService:
        name = self._unique_name(f"pool-{_slug(model.served_name)}")
        home = self.directory / name / "home"
        labels = {KIND_LABEL: VLLM_KIND, "model": model.label, "pool": "session"}
        return _start_vllm(self.manager, name, key, tier.start_timeout, home, labels)

    def _alive(self, service: ManagedService) -> bool:
        try:
            current = self.manager.get(service.name)
        except KeyError:
            return False
        return current.pid == service.pid and _pid_alive(service.pid)

    def _forget(self, service: ManagedService) -> None:
        with contextlib.suppress(KeyError):
            self.manager.stop(service.name)

    def _unique_name(self, base: str) -> str:
        name, number = base, 1
        while name in self._names:
            number += 1
            name = f"{base}-{number}"
        self._names.add(name)
        return name


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "model"


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
