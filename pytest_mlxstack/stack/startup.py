"""Starting a stack's servers and its LiteLLM at the same time.

Every tier's server starts in a thread of its own (at most ``startlimit.start_limit`` at once,
by memory), and LiteLLM starts as soon as every server has its port: LiteLLM's config needs
only the ports, and its own boot (about 7 s) then overlaps the models' loading. When the
servers are ready, LiteLLM's routes are compared with the servers that did start; if they
differ (a server failed, or lost its port to another program and moved), LiteLLM is started
again with the right routes, so the proxy never routes to a port nobody serves.

A failed server either stops the whole start (``tolerate=False``: the others are called off
and the first error is raised) or is handed back as *down* while the rest go on. Ctrl-C or
any error in the caller's thread calls every start off and waits for them (``StartGroup``):
nothing keeps starting behind the caller's cleanup.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_mlxstack.process.services import ManagedService, ServiceManager
from pytest_mlxstack.process.together import Outcome, StartGroup
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.models import ResolvedModel
from pytest_mlxstack.stack.pool import ServerPool
from pytest_mlxstack.stack.proxy_config import ProxyRoute
from pytest_mlxstack.stack.servers import TierServer, start_tier_server
from pytest_mlxstack.stack.spec import TierSpec
from pytest_mlxstack.stack.startlimit import start_limit

SLOT_POLL_S = 0.1
ProxyStarter = Callable[[list[ProxyRoute], threading.Event], ManagedService]
OwnedServer = Callable[[TierSpec], tuple[str, Path, dict[str, str]]]  # name, HOME, labels


@dataclass
class Launched:
    """What a concurrent start produced: the ready servers (spec order), the tiers that did
    not start, and LiteLLM (None: disabled or nothing to route)."""

    servers: dict[str, TierServer] = field(default_factory=dict)
    down: dict[str, StackError] = field(default_factory=dict)
    proxy: ManagedService | None = None


class _Ports:
    """Which tiers have a port yet (or have given up); LiteLLM waits until all have."""

    def __init__(self, tiers: list[str]) -> None:
        self.waiting = set(tiers)
        self.ports: dict[str, int] = {}
        self.changed = threading.Condition()

    def launched(self, tier: str, port: int) -> None:
        with self.changed:
            self.ports[tier] = port
            self.waiting.discard(tier)
            self.changed.notify_all()

    def gave_up(self, tier: str) -> None:
        with self.changed:
            self.ports.pop(tier, None)
            self.waiting.discard(tier)
            self.changed.notify_all()

    def wait_all(self, cancel: threading.Event) -> dict[str, int]:
        with self.changed:
            while self.waiting and not cancel.is_set():
                self.changed.wait(SLOT_POLL_S)
            return dict(self.ports)


def launch_together(
    tiers: list[TierSpec],
    resolved: dict[str, ResolvedModel],
    *,
    manager: ServiceManager,
    pool: ServerPool | None,
    owned_server: OwnedServer,
    start_proxy: ProxyStarter | None,
    tolerate: bool,
    owned: list[str],
    say: Callable[[str], None],
    cancel: threading.Event | None = None,
) -> Launched:
    """Start ``tiers`` (from ``pool``, else each its own server through ``manager``, named by
    ``owned_server``) and, if ``start_proxy`` is given, LiteLLM, all at once. The name of
    every service this call starts itself (not the pool's) goes into ``owned`` as soon as it
    runs, so that the caller can stop it even if the start as a whole fails. Setting ``cancel``
    (from another thread) calls every start off."""
    done = Launched()
    ports = _Ports([tier.name for tier in tiers])
    limit = threading.BoundedSemaphore(start_limit([resolved[t.name] for t in tiers]))
    first_error: list[BaseException] = []
    owned_lock = threading.Lock()

    def own(service: ManagedService) -> None:
        with owned_lock:
            owned.append(service.name)

    with StartGroup(cancel=cancel) as group:

        def serve(tier: TierSpec) -> TierServer:
            model = resolved[tier.name]
            try:
                while not limit.acquire(timeout=SLOT_POLL_S):
                    if group.cancel.is_set():
                        raise StackError(f"the start of tier {tier.name} was called off")
                try:
                    server = _serve_one(tier, model, manager, pool, owned_server, ports, group, say)
                finally:
                    limit.release()
                if not server.pooled:
                    own(server.service)
                return server
            except BaseException as exc:
                ports.gave_up(tier.name)
                if not tolerate and not group.cancel.is_set():
                    first_error.append(exc)
                    group.cancel.set()  # one failure ends the whole start: call the rest off
                raise

        outcomes = {tier.name: group.submit(functools.partial(serve, tier)) for tier in tiers}
        proxy: Outcome[tuple[ManagedService, list[ProxyRoute]] | None] | None = None
        if start_proxy is not None:
            starter = start_proxy

            def proxy_task() -> tuple[ManagedService, list[ProxyRoute]] | None:
                known = ports.wait_all(group.cancel)
                routes = _routes(tiers, resolved, known)
                if group.cancel.is_set() or not routes:
                    return None
                say("starting the LiteLLM proxy")
                begun = time.monotonic()
                service = starter(routes, group.cancel)
                own(service)
                say(f"LiteLLM ready at {service.url}/v1 in {time.monotonic() - begun:.1f} s")
                return service, routes

            proxy = group.submit(proxy_task)

    if first_error:
        raise first_error[0]
    for tier in tiers:
        outcome = outcomes[tier.name]
        if outcome.error is None:
            server = outcome.result()
            done.servers[tier.name] = server
        elif isinstance(outcome.error, StackError) and tolerate:
            done.down[tier.name] = outcome.error
        else:
            raise outcome.error
    if proxy is not None and start_proxy is not None:
        _settle_proxy(done, proxy.result(), manager, tiers, resolved, start_proxy, owned, say)
    return done


def _serve_one(
    tier: TierSpec,
    model: ResolvedModel,
    manager: ServiceManager,
    pool: ServerPool | None,
    owned_server: OwnedServer,
    ports: _Ports,
    group: StartGroup,
    say: Callable[[str], None],
) -> TierServer:
    def on_launch(service: ManagedService) -> None:
        ports.launched(tier.name, service.port)

    if pool is not None:
        server = pool.serve(tier, model, on_launch=on_launch, cancel=group.cancel)
        ports.launched(tier.name, server.port)
        return server
    name, home, labels = owned_server(tier)
    say(f"loading {model.label} in {tier.kind} for tier {tier.name}")
    server = start_tier_server(
        manager, name, tier, model, home, labels, on_launch=on_launch, cancel=group.cancel
    )
    say(f"tier {tier.name} ready at {server.base_url} in {server.startup_s:.1f} s")
    ports.launched(tier.name, server.port)
    return server


def _routes(
    tiers: list[TierSpec], resolved: dict[str, ResolvedModel], ports: dict[str, int]
) -> list[ProxyRoute]:
    return [
        ProxyRoute(tier=tier.name, served_name=resolved[tier.name].served_name, port=port)
        for tier in tiers
        if (port := ports.get(tier.name)) is not None
    ]


def _settle_proxy(
    done: Launched,
    started: tuple[ManagedService, list[ProxyRoute]] | None,
    manager: ServiceManager,
    tiers: list[TierSpec],
    resolved: dict[str, ResolvedModel],
    start_proxy: ProxyStarter,
    owned: list[str],
    say: Callable[[str], None],
) -> None:
    """Keep LiteLLM if it routes exactly the servers that started; else start it again."""
    ready = _routes(tiers, resolved, {t: s.port for t, s in done.servers.items()})
    if started is not None:
        service, routes = started
        if routes == ready:
            done.proxy = service
            return
        say("starting LiteLLM again: a server behind it did not start or moved to another port")
        manager.stop(service.name)
        owned.remove(service.name)
    if ready:
        service = start_proxy(ready, threading.Event())
        owned.append(service.name)
        done.proxy = service
