"""Starting one tier's server, of whichever kind the tier names (``stack/kinds/``).

``start_tier_server`` gives a stack a server of its own; ``pool.ServerPool`` shares one per
``ServerKey`` (kind, model folder, served name, flags, fixed port) between stacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_mlxstack.process.ports import port_is_free
from pytest_mlxstack.process.services import ManagedService, ServiceManager, ServiceStartError
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.kinds import DEFAULT_KIND, ServerKey, get_kind
from pytest_mlxstack.stack.models import ResolvedModel
from pytest_mlxstack.stack.proxy_service import LITELLM_HEALTH
from pytest_mlxstack.stack.spec import TierSpec

KIND_LABEL = "kind"
VLLM_KIND = DEFAULT_KIND
LITELLM_KIND = "litellm"
VLLM_HEALTH = "/health"

__all__ = [
    "KIND_LABEL",
    "LITELLM_HEALTH",
    "LITELLM_KIND",
    "VLLM_HEALTH",
    "VLLM_KIND",
    "ServerKey",
    "TierServer",
    "check_port_free",
    "server_key",
    "start_server",
    "start_tier_server",
]


@dataclass(frozen=True)
class TierServer:
    """A ready server for one tier: where it listens and what clients must call it."""

    tier: str
    served_name: str
    model_label: str
    service: ManagedService
    pooled: bool = False
    startup_s: float | None = None  # seconds this call spent starting it; None: reused
    kind: str = DEFAULT_KIND

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"{self.service.url}/v1"

    @property
    def port(self) -> int:
        return self.service.port


def server_key(tier: TierSpec, model: ResolvedModel) -> ServerKey:
    args = get_kind(tier.kind).serve_args(
        model.parsers,
        continuous_batching=tier.continuous_batching,
        paged_cache=tier.paged_cache,
        extra=tier.flags,
    )
    return ServerKey(model.path, model.served_name, args, tier.port, tier.kind)


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
    *,
    on_launch: Callable[[ManagedService], None] | None = None,
    cancel: threading.Event | None = None,
) -> TierServer:
    """Start a dedicated server for ``tier`` (no pool); ``StackError`` if it fails."""
    key = server_key(tier, model)
    labels = {**labels, KIND_LABEL: key.kind, "tier": tier.name, "model": model.label}
    begun = time.monotonic()
    service = start_server(
        manager,
        service_name,
        key,
        tier.start_timeout,
        home,
        labels,
        on_launch=on_launch,
        cancel=cancel,
    )
    elapsed = round(time.monotonic() - begun, 3)
    return TierServer(
        tier.name, model.served_name, model.label, service, startup_s=elapsed, kind=key.kind
    )


def start_server(
    manager: ServiceManager,
    name: str,
    key: ServerKey,
    timeout: float,
    home: Path,
    labels: Mapping[str, str],
    *,
    on_launch: Callable[[ManagedService], None] | None = None,
    cancel: threading.Event | None = None,
) -> ManagedService:
    """Start ``key``'s server through the generic manager; ``StackError`` if it fails
    (``on_launch`` and ``cancel`` as in ``ServiceManager.start``)."""
    check_port_free(key.port, f"service {name}")
    kind = get_kind(key.kind)
    try:
        launch = kind.launch(key, home)
        return manager.start(
            name,
            launch.argv,
            key.port,
            health_path=launch.health_path,
            env=launch.env,
            timeout=timeout,
            cwd=launch.cwd,
            labels=labels,
            on_launch=on_launch,
            cancel=cancel,
        )
    except ServiceStartError as exc:
        raise StackError(f"{kind.name} for {name} did not start: {exc}", detail=exc.detail) from exc
