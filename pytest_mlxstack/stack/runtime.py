"""Bringing a whole stack up (tiers and LiteLLM in front, started together) and down again.

Everything is resolved and checked before the first process starts (unknown model, missing
folder, fixed port in use), so a broken spec costs no start-up time. If a later service fails,
the ones this stack already started are stopped before the error propagates: no half stack is
left behind.
"""

from __future__ import annotations

import contextlib
import secrets as _random
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pytest_mlxstack.process.services import ManagedService, ServiceManager, ServiceStartError
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.masterkey import MasterKey
from pytest_mlxstack.stack.models import (
    PullFunction,
    ResolvedModel,
    load_catalogs,
    needs_catalog,
    resolve_tier,
)
from pytest_mlxstack.stack.pool import ServerPool
from pytest_mlxstack.stack.proxy_config import ProxyRoute, litellm_env, write_litellm_config
from pytest_mlxstack.stack.proxy_service import start_litellm
from pytest_mlxstack.stack.servers import (
    KIND_LABEL,
    LITELLM_KIND,
    TierServer,
    check_port_free,
)
from pytest_mlxstack.stack.spec import StackSpec, TierSpec
from pytest_mlxstack.stack.startup import launch_together

PROXY_SERVICE = "litellm"
CONFIG_FILE = "litellm.yaml"
HOME_DIR = "home"  # LiteLLM's HOME
TIERS_DIR = "tiers"  # <tier>/home: the HOME of each vllm-mlx the stack starts itself


@dataclass
class Stack:
    """A running stack. ``down()`` (or leaving the ``with`` block) stops what it started and
    removes the files it wrote: the whole ``directory`` if ``start_stack`` created it, else
    only its own entries in it (``home/``, ``tiers/``, ``litellm.yaml``). Logs live under the
    service manager's home and stay.

    The master key is only reachable through ``master_key.reveal()``; the stack's ``repr``
    shows URLs and pids, never the key.
    """

    spec: StackSpec
    stack_id: str
    directory: Path
    master_key: MasterKey = field(repr=False)
    tiers: dict[str, TierServer]
    proxy: ManagedService | None
    manager: ServiceManager = field(repr=False)
    resolved: dict[str, ResolvedModel] = field(default_factory=dict, repr=False)
    _owned: list[str] = field(default_factory=list, repr=False)
    _created: list[Path] = field(default_factory=list, repr=False)

    @property
    def proxy_url(self) -> str:
        """LiteLLM's OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        if self.proxy is None:
            raise StackError(
                f"Stack {self.stack_id} runs without LiteLLM; use tier_url(tier) or enable litellm"
            )
        return f"{self.proxy.url}/v1"

    def tier(self, name: str) -> TierServer:
        try:
            return self.tiers[name]
        except KeyError:
            raise KeyError(
                f"no tier '{name}' in stack {self.stack_id} (tiers: {', '.join(self.tiers)})"
            ) from None

    def tier_url(self, name: str) -> str:
        """The tier's own vllm-mlx base URL (``.../v1``), bypassing LiteLLM."""
        return self.tier(name).base_url

    @property
    def services(self) -> list[ManagedService]:
        """Every process serving this stack (pooled tiers included), proxy last."""
        found = [tier.service for tier in self.tiers.values()]
        unique = list({service.name: service for service in found}.values())
        return unique + ([self.proxy] if self.proxy is not None else [])

    @property
    def ports(self) -> list[int]:
        return [service.port for service in self.services]

    def down(self) -> None:
        """Stop the proxy and this stack's own tiers (pooled tiers belong to the pool), then
        remove what ``start_stack`` created on disk. Idempotent."""
        while self._owned:
            name = self._owned.pop()
            with contextlib.suppress(KeyError):
                self.manager.stop(name)
        while self._created:
            _remove(self._created.pop())

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()


def new_stack_id() -> str:
    return "stack-" + _random.token_hex(4)


def start_stack(
    spec: StackSpec,
    *,
    manager: ServiceManager,
    directory: Path,
    pool: ServerPool | None = None,
    pull: PullFunction | None = None,
    stack_id: str | None = None,
    service_prefix: str = "",
    key: MasterKey | None = None,
    labels: Mapping[str, str] | None = None,
    on_started: Callable[[ManagedService], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    on_down: Callable[[str, StackError], None] | None = None,
    cancel: threading.Event | None = None,
) -> Stack:
    """Start ``spec``'s tiers (from ``pool`` when given) and LiteLLM; return the running stack.

    The servers start at the same time (as many as fit in memory, ``stack/startlimit.py``),
    and LiteLLM as soon as every server has its port (``stack/startup.py``).
    Services are named ``<service_prefix><tier>`` and ``<service_prefix>litellm``. Every
    process has a HOME of its own: LiteLLM ``<directory>/home``, a vllm-mlx this stack starts
    ``<directory>/tiers/<tier>/home``; a pooled server has one under the pool's directory and
    is shared, with its HOME and prefix cache, by every stack that uses it. ``down()`` removes
    ``directory`` if this call created it, else only what it wrote there.
    ``labels`` go into each service's pid-registry record (``mlxstack status`` shows them).
    ``on_progress`` hears a line when a server this call starts begins loading and when it is
    ready (a pool reports its own servers). ``on_started`` hears each ready service, tiers
    first, once all have started.
    With ``on_down``, a tier whose model cannot be resolved or whose server does not start is
    handed to it (tier name, error) and left out: the stack serves the others, LiteLLM routes
    only those (no LiteLLM when none started). Without it, the first such error stops
    everything. Setting ``cancel`` from another thread calls the start off (the services
    that started are stopped and ``StackError`` or ``ServiceStartCancelled`` is raised).
    Raises ``StackError`` with one sentence for user errors; nothing is left running then.
    """
    stack_id = stack_id or new_stack_id()
    directory = Path(directory)
    catalogs = load_catalogs(spec) if needs_catalog(spec) else []
    resolved: dict[str, ResolvedModel] = {}
    for tier in spec.tiers:
        try:
            resolved[tier.name] = resolve_tier(tier, catalogs=catalogs, pull=pull, spec=spec)
        except StackError as exc:
            if on_down is None:
                raise
            on_down(tier.name, exc)
    for tier in spec.tiers:
        check_port_free(tier.port, f"tier {tier.name}")
    if spec.litellm.enabled:
        check_port_free(spec.litellm.port, "LiteLLM")
    created = _to_create(directory)
    home = directory / HOME_DIR
    home.mkdir(parents=True, exist_ok=True)
    key = key or MasterKey.generate()
    manager.add_secret(key.reveal())
    stack = Stack(
        spec=spec,
        stack_id=stack_id,
        directory=directory,
        master_key=key,
        tiers={},
        proxy=None,
        manager=manager,
        resolved=resolved,
        _created=created,
    )
    labels = {**(labels or {}), "stack": stack_id}
    say = on_progress or (lambda message: None)

    def owned_server(tier: TierSpec) -> tuple[str, Path, dict[str, str]]:
        return f"{service_prefix}{tier.name}", directory / TIERS_DIR / tier.name / HOME_DIR, labels

    def start_proxy(routes: list[ProxyRoute], cancel: threading.Event) -> ManagedService:
        name = f"{service_prefix}{PROXY_SERVICE}"
        return _start_proxy(stack, routes, name, home, labels, cancel)

    try:
        launched = launch_together(
            [tier for tier in spec.tiers if tier.name in resolved],
            resolved,
            manager=manager,
            pool=pool,
            owned_server=owned_server,
            start_proxy=start_proxy if spec.litellm.enabled else None,
            tolerate=on_down is not None,
            owned=stack._owned,
            say=say,
            cancel=cancel,
        )
        stack.tiers = launched.servers
        stack.proxy = launched.proxy
        for tier_name, error in launched.down.items():
            assert on_down is not None
            on_down(tier_name, error)
        if on_started is not None:
            for service in stack.services:
                on_started(service)
    except BaseException:
        stack.down()
        raise
    return stack


def _start_proxy(
    stack: Stack,
    routes: list[ProxyRoute],
    name: str,
    home: Path,
    labels: dict[str, str],
    cancel: threading.Event,
) -> ManagedService:
    spec = stack.spec.litellm
    config = write_litellm_config(
        stack.directory / CONFIG_FILE, routes, request_timeout=spec.request_timeout
    )
    env = litellm_env(home)
    try:
        service = start_litellm(
            stack.manager,
            name,
            config,
            spec.port,
            master_key=stack.master_key,
            env=env,
            timeout=spec.start_timeout,
            labels={**labels, KIND_LABEL: LITELLM_KIND, "model": ", ".join(r.tier for r in routes)},
            cancel=cancel,
        )
    except ServiceStartError as exc:
        raise StackError(f"LiteLLM did not start: {exc}", detail=exc.detail) from exc
    return service


def _to_create(directory: Path) -> list[Path]:
    """What ``start_stack`` is about to create under ``directory`` (removed by ``down``)."""
    if not directory.exists():
        return [directory]
    return [
        path
        for path in (directory / HOME_DIR, directory / TIERS_DIR, directory / CONFIG_FILE)
        if not path.exists()
    ]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
