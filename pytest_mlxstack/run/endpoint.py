"""The built-in suites against servers somebody else runs (``--mlx-endpoint``, or several
from ``--mlx-endpoints FILE``).

The smoke and harness suites ask their questions straight to that server (both routes are the
same server: there is no proxy of ours in front of it); the capabilities a test expects come
from the catalog entry that describes the model. Nothing is started, so there is nothing to
stop: ``close`` only closes the clients. With several endpoints each is a target of its own
(``EndpointTarget``) whose rows name its server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_mlxstack.catalog import Catalog
from pytest_mlxstack.run.selection import SelectionError, SuiteTarget
from pytest_mlxstack.run.session import SuiteStack, row_source
from pytest_mlxstack.stack.endpoint import Endpoint

if TYPE_CHECKING:
    from openai import OpenAI

    from pytest_mlxstack.probes.performance import Performance

ENDPOINT_SUITES = ("smoke", "harness")


def endpoint_target(
    catalog: Catalog, endpoint: Endpoint, requested: list[str], *, where: str = "--mlx-models"
) -> SuiteTarget:
    """The one target of an endpoint run: the catalog entry named by ``--mlx-models``, else
    the entry whose id is the endpoint's model name; ``tier`` is the name the server knows."""
    if len(requested) > 1:
        raise SelectionError(
            f"{where}: an endpoint serves one model, but {len(requested)} were named; name the "
            "catalog entry that describes it"
        )
    wanted = requested[0] if requested else endpoint.model.rsplit("/", 1)[-1]
    model_id, _, quant = wanted.partition(":")
    if model_id not in catalog.ids:
        raise SelectionError(
            f"{where}: no entry of the catalog {catalog.path} describes the endpoint's model "
            f"{endpoint.model!r}; name one with --mlx-models ID (it says which capabilities "
            "to expect), or pass --mlx-suite-catalog"
        )
    entry = catalog.get(model_id)
    quant = quant or next(iter(entry.sources))
    if quant not in entry.sources:
        raise SelectionError(f"{where}: {model_id!r} has no {quant!r} source in {catalog.path}")
    return SuiteTarget(entry, quant, endpoint.model)


@dataclass(frozen=True)
class EndpointTarget(SuiteTarget):
    """A target served by one of several endpoints: its label and its rows name the server."""

    endpoint: Endpoint | None = field(default=None, repr=False)

    @property
    def server(self) -> str:
        return self.endpoint.server if self.endpoint is not None else ""

    @property
    def label(self) -> str:
        """``tiny-chat-bf16-mlx-lm@127.0.0.1:8081``: one model on two servers, two ids."""
        return f"{self.entry.id}-{self.quant}-{self.server}"


def endpoint_targets(
    catalog: Catalog,
    endpoints: list[tuple[Endpoint, str | None]],
    requested: list[str],
    *,
    where: str = "--mlx-models",
) -> list[SuiteTarget]:
    """One target per endpoint (with the catalog entry it names, else ``--mlx-models``, else
    the entry named like its model)."""
    targets: list[SuiteTarget] = []
    for endpoint, catalog_model in endpoints:
        wanted = [catalog_model] if catalog_model else requested
        one = endpoint_target(catalog, endpoint, wanted, where=where)
        targets.append(EndpointTarget(one.entry, one.quant, one.tier, endpoint))
    return targets


@dataclass
class EndpointSuite(SuiteStack):
    """A ``SuiteStack`` whose one target is served by ``endpoint`` (never started here)."""

    endpoint: Endpoint | None = field(default=None, repr=False)

    def _client(self, target: SuiteTarget | None = None) -> OpenAI:
        endpoint = self._endpoint_of(target)
        name = f"endpoint:{endpoint.base_url}"
        if name not in self._clients:
            self._clients[name] = endpoint.client()
        return self._clients[name]

    def _endpoint_of(self, target: SuiteTarget | None) -> Endpoint:
        if isinstance(target, EndpointTarget) and target.endpoint is not None:
            return target.endpoint
        assert self.endpoint is not None
        return self.endpoint

    def direct_client(self, target: SuiteTarget) -> OpenAI:
        return self._client(target)

    def proxy_client(self) -> OpenAI:
        return self._client()

    def proxy_client_for(self, target: SuiteTarget) -> OpenAI:
        """The "proxied" route of ``target``: its own server, as there is no proxy."""
        return self._client(target)

    def performance(self, target: SuiteTarget) -> Performance:
        """Measured once per server (two endpoints may serve the same model name)."""
        from pytest_mlxstack.probes.performance import measure_performance

        name = f"{self._endpoint_of(target).base_url} {target.tier}"
        if name not in self.measured:
            self.measured[name] = measure_performance(self._client(target), target.tier)
        return self.measured[name]

    def served_name(self, target: SuiteTarget) -> str:
        return target.tier

    @property
    def tier_names(self) -> list[str]:
        return [target.tier for target in self.targets]

    @property
    def secrets(self) -> tuple[str, ...]:
        found = [self._endpoint_of(target).secrets for target in self.targets]
        return tuple(secret for secrets in found for secret in secrets)

    def server_starts(self, target: SuiteTarget) -> int:
        return 0

    def row_facts(self, target: SuiteTarget) -> dict[str, Any]:
        repo, revision = row_source(target)
        return {"repo": repo, "revision": revision, **self.performance(target).as_row_facts()}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def endpoint_suite(targets: list[SuiteTarget], endpoint: Endpoint) -> EndpointSuite:
    """The suite over ``targets``: each ``EndpointTarget`` asks its own server, any other
    target ``endpoint``."""
    return EndpointSuite(running=None, pool=None, targets=list(targets), endpoint=endpoint)
