"""Starting one tier's vllm-mlx: its command line, environment and registry labels.

``start_tier_server`` gives a stack a server of its own; ``pool.ServerPool`` shares one per
``ServerKey`` (model folder, served name, flags, fixed port) between stacks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_mlxstack.process.ports import port_is_free
from pytest_mlxstack.process.services import ManagedService, ServiceManager, ServiceStartError
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


@dataclass(frozen=True)
class TierServer:
    """A ready vllm-mlx serving one tier: where it listens and what clients must call it."""

    tier: str
    served_name: str
    model_label: str
    service: ManagedService
    pooled: bool = False
    startup_s: float | None = None  # seconds this call spent starting it; None: reused

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"{self.service.url}/v1"

    @property
    def port(self) -> int:
        return self.service.port


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
    every model has been resolved to a local folder before the server starts. Concurrent
    requests queue: vllm-mlx's SimpleEngine otherwise answers one that arrives while another
    is generating with 503 ``text_generation_busy`` (the integration suite's concurrency
    check found it)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "VLLM_MLX_SIMPLE_ENGINE_LOCK_ADMISSION": "wait",
    }


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
    begun = time.monotonic()
    service = start_vllm(manager, service_name, key, tier.start_timeout, home, labels)
    elapsed = round(time.monotonic() - begun, 3)
    return TierServer(tier.name, model.served_name, model.label, service, startup_s=elapsed)


def start_vllm(
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
        raise StackError(f"vllm-mlx for {name} did not start: {exc}", detail=exc.detail) from exc
