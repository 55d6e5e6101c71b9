"""The recorder behind ``mlx_matrix``: one test's cells, as payloads a report can carry."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pytest_mlxstack.matrix.collect import (
    CELL_PROPERTY,
    ROW_PROPERTY,
    cell_from_payload,
    cell_payload,
    row_payload,
)
from pytest_mlxstack.matrix.expectations import Expectations
from pytest_mlxstack.matrix.model import Cell
from pytest_mlxstack.matrix.outcome import Outcome, decide
from pytest_mlxstack.matrix.verdicts import ProbeResult, Route


class MatrixRecorder:
    """Records capability results of one test as matrix cells (the ``mlx_matrix`` fixture).

    ``record`` appends the cell's payload to ``properties`` (a test report's user properties,
    which carry it to the xdist controller); ``check`` decides the test's outcome and hands it
    to ``enforce`` (the pytest wiring maps it onto fail, skip or xfail).
    """

    def __init__(
        self,
        test_id: str,
        properties: list[tuple[str, object]],
        expectations: Expectations,
        enforce: Callable[[Outcome], None],
        defaults: Callable[[], tuple[str, str, str | None]] | None = None,
    ) -> None:
        self._defaults = defaults
        self._test_id = test_id
        self._properties = properties
        self._expectations = expectations
        self._enforce = enforce
        self._recorded: list[tuple[ProbeResult, Cell, str]] = []

    @property
    def cells(self) -> list[Cell]:
        """The cells this test recorded so far (redacted, with their expectation)."""
        return [cell for _, cell, _ in self._recorded]

    def record(
        self,
        result: ProbeResult,
        *,
        model: str | None = None,
        quant: str | None = None,
        route: Route | str = Route.PROXIED,
        repo: str | None = None,
        revision: str | None = None,
        secrets: Iterable[str] = (),
        server: str | None = None,
    ) -> Cell:
        """Add one cell (``result.capability`` through ``route``) to the row (model, quant).

        Left out, ``model`` and ``quant`` are those of the stack's default tier and ``route``
        is ``proxied`` (what ``openai_client`` talks to); give ``route="direct"`` for a
        ``tier_client`` answer. ``secrets`` are exact values (a stack's master key, a token)
        redacted from the cell on top of every secret-shaped string. ``server`` names the
        row's server when it is not the run's; left out with ``model``, it is the default
        tier's server kind."""
        if not isinstance(result, ProbeResult):
            raise TypeError(f"mlx_matrix.record() takes a ProbeResult, got {type(result).__name__}")
        model, quant, server = self._row(model, quant, server)
        try:
            route = Route(route)
        except ValueError:
            raise ValueError(
                f"mlx_matrix.record(): route {route!r} is not one of "
                f"{', '.join(r.value for r in Route)}"
            ) from None
        payload = cell_payload(
            result,
            model=model,
            quant=quant,
            route=route,
            repo=repo,
            revision=revision,
            test_id=self._test_id,
            secrets=secrets,
            server=server,
        )
        self._properties.append((CELL_PROPERTY, payload))
        cell = cell_from_payload(payload)
        expectation = self._expectations.judge(
            model=model,
            quant=quant,
            capability=cell.capability,
            route=route,
            verdict=cell.verdict,
            attribution=cell.attribution,
            server=server,
        )
        cell = cell.model_copy(update={"expectation": expectation})
        self._recorded.append((result, cell, f"({route.value}) for {model} [{quant}]"))
        return cell

    def _row(
        self, model: str | None, quant: str | None, server: str | None
    ) -> tuple[str, str, str | None]:
        if model is None or quant is None:
            if self._defaults is None:
                raise ValueError(
                    "mlx_matrix.record(): model and quant are needed when there is no stack to "
                    "take them from; pass model= and quant="
                )
            default_model, default_quant, default_server = self._defaults()
            if model is None and server is None:
                server = default_server
            model = default_model if model is None else model
            quant = default_quant if quant is None else quant
        _require_text(model=model, quant=quant)
        return model, quant, server

    def record_row(
        self,
        *,
        model: str,
        quant: str,
        repo: str | None = None,
        revision: str | None = None,
        startup_s: float | None = None,
        memory_mb: float | None = None,
        server_starts: int | None = None,
        ttft_s: float | None = None,
        decode_tokens_per_s: float | None = None,
        prompt_tokens_per_s: float | None = None,
        server: str | None = None,
        server_version: str | None = None,
    ) -> None:
        """Facts about the row itself (``server``: when not the run's). ``server_starts`` is
        how often the run has started the row's server so far (the suites read it from the
        server pool's ledger, which every xdist worker shares); the matrix keeps the largest
        value any test reported.
        ``ttft_s``, ``decode_tokens_per_s`` and ``prompt_tokens_per_s`` are the row's measured
        performance; the matrix keeps the best reported."""
        _require_text(model=model, quant=quant)
        numbers = {
            "startup_s": startup_s,
            "memory_mb": memory_mb,
            "ttft_s": ttft_s,
            "decode_tokens_per_s": decode_tokens_per_s,
            "prompt_tokens_per_s": prompt_tokens_per_s,
        }
        for name, value in numbers.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise TypeError(f"mlx_matrix.record_row(): {name} must be a number, got {value!r}")
        if server_starts is not None and (
            isinstance(server_starts, bool) or not isinstance(server_starts, int)
        ):
            raise TypeError(
                f"mlx_matrix.record_row(): server_starts must be an int, got {server_starts!r}"
            )
        payload = row_payload(
            model=model,
            quant=quant,
            repo=repo,
            revision=revision,
            startup_s=startup_s,
            memory_mb=memory_mb,
            server_starts=server_starts,
            ttft_s=ttft_s,
            decode_tokens_per_s=decode_tokens_per_s,
            prompt_tokens_per_s=prompt_tokens_per_s,
            server=server,
            server_version=server_version,
        )
        self._properties.append((ROW_PROPERTY, payload))

    def check(self, result: ProbeResult) -> None:
        """Fail, skip or xfail the test according to ``result`` (recorded or not)."""
        for recorded, cell, label in reversed(self._recorded):
            if recorded is result:
                self._enforce(decide(result, cell.expectation, label=label))
                return
        self._enforce(decide(result))


def _require_text(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"mlx_matrix: {name} must be a non-empty string, got {value!r}")
