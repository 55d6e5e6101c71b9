"""The built-in suites against a server somebody else runs (``--mlx-endpoint``).

The smoke and harness suites ask their questions straight to that server (both routes are the
same server: there is no proxy of ours in front of it); the capabilities a test expects come
from the catalog entry that describes the model. Nothing is started, so there is nothing to
stop: ``close`` only closes the client.
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


@dataclass
class EndpointSuite(SuiteStack):
    """A ``SuiteStack`` whose one target is served by ``endpoint`` (never started here)."""

    endpoint: Endpoint | None = field(default=None, repr=False)

    def _client(self) -> OpenAI:
        assert self.endpoint is not None
        if "endpoint" not in self._clients:
            self._clients["endpoint"] = self.endpoint.client()
        return self._clients["endpoint"]

    def direct_client(self, target: SuiteTarget) -> OpenAI:
        return self._client()

    def proxy_client(self) -> OpenAI:
        return self._client()

    def served_name(self, target: SuiteTarget) -> str:
        return target.tier

    @property
    def tier_names(self) -> list[str]:
        return [target.tier for target in self.targets]

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.endpoint.secrets if self.endpoint is not None else ()

    def server_starts(self, target: SuiteTarget) -> int:
        return 0

    def row_facts(self, target: SuiteTarget) -> dict[str, Any]:
        repo, revision = row_source(target)
        return {"repo": repo, "revision": revision, **self.performance(target).as_row_facts()}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def endpoint_suite(target: SuiteTarget, endpoint: Endpoint) -> EndpointSuite:
    return EndpointSuite(running=None, pool=None, targets=[target], endpoint=endpoint)
