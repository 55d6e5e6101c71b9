"""Turn recorded cells and row facts (plain JSON payloads) into one ``Matrix``.

Independent of pytest: the plugin feeds payloads taken from test reports (so that cells from
every xdist worker reach the controller), and any other harness can feed them directly.
Payloads are sanitized (secrets redacted) when they are created, before they travel anywhere.

Aggregation is deterministic whatever order the workers report in:
- a cell recorded twice keeps the worst verdict (fail > pass > skip > n/a), because a cell
  must not say "pass" when any test saw the capability fail; ties go to the lower test id;
- a row's ``server_starts``, ``startup_s`` and ``memory_mb`` keep the maximum reported. The
  server pool is shared by every xdist worker of a run through its ledger, and each process
  reports the run's start count read from it, so the largest report is the newest count (a
  sum would count the same start once per worker);
- a row's performance figures (time to first token, decode and prompt tokens per second) keep
  the best any process measured: the shortest time, the highest rates.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.matrix.expectations import Expectations
from pytest_mlxstack.matrix.model import (
    LEGACY_SERVER,
    Cell,
    EvidenceRecord,
    Matrix,
    Row,
    RunMetadata,
)
from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Route, Verdict
from pytest_mlxstack.text.redact import sanitize

CELL_PROPERTY = "mlxstack.cell"
ROW_PROPERTY = "mlxstack.row"

# Higher wins when one cell is recorded more than once.
_VERDICT_WEIGHT = {Verdict.FAIL: 3, Verdict.PASS: 2, Verdict.SKIP: 1, Verdict.NOT_APPLICABLE: 0}


class PayloadError(MlxStackError, ValueError):
    """A payload that does not come from a compatible recorder."""


def current_process() -> str:
    """Which process recorded a payload: the xdist worker id, or ``main``."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def cell_payload(
    result: ProbeResult,
    *,
    model: str,
    quant: str,
    route: Route | str,
    repo: str | None = None,
    revision: str | None = None,
    test_id: str | None = None,
    secrets: Iterable[str] = (),
    server: str | None = None,
    server_version: str | None = None,
) -> dict[str, Any]:
    """The JSON-able, redacted form of one recorded cell; ``secrets`` are exact values (a
    stack's master key) redacted on top of every secret-shaped string. ``server`` names the
    row's server when it is not the run's (a stack tier of another kind, one of several
    endpoints)."""
    payload = {
        "model": model,
        "quant": quant,
        "server": server,
        "server_version": server_version,
        "route": Route(route).value,
        "repo": repo,
        "revision": revision,
        "test_id": test_id,
        "process": current_process(),
        "result": result.to_json(),
    }
    return dict(sanitize(payload, secrets))


def row_payload(
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
    process: str | None = None,
    server: str | None = None,
    server_version: str | None = None,
) -> dict[str, Any]:
    """The JSON-able form of facts about a row (not about one capability)."""
    payload = {
        "model": model,
        "quant": quant,
        "server": server,
        "server_version": server_version,
        "repo": repo,
        "revision": revision,
        "startup_s": startup_s,
        "memory_mb": memory_mb,
        "server_starts": server_starts,
        "ttft_s": ttft_s,
        "decode_tokens_per_s": decode_tokens_per_s,
        "prompt_tokens_per_s": prompt_tokens_per_s,
        "process": process or current_process(),
    }
    return dict(sanitize(payload))


def cell_from_payload(payload: Any) -> Cell:
    """The ``Cell`` a cell payload describes (without run id or expectation yet)."""
    try:
        result = payload["result"]
        if not all(isinstance(payload.get(name), str) for name in ("model", "quant")):
            raise ValueError("model and quant must be strings")
        attribution = result.get("attribution")
        return Cell(
            capability=str(result["capability"]),
            route=Route(payload["route"]),
            verdict=Verdict(result["verdict"]),
            reason=str(result.get("reason") or ""),
            attribution=Attribution(attribution) if attribution else None,
            evidence=EvidenceRecord.model_validate(sanitize(result.get("evidence") or {})),
            test_id=payload.get("test_id"),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise PayloadError(f"a recorded cell is malformed ({exc}): {payload!r:.200}") from None


@dataclass
class _RowFacts:
    repos: set[str] = field(default_factory=set)
    revisions: set[str] = field(default_factory=set)
    server_versions: set[str] = field(default_factory=set)
    startup_s: float | None = None
    memory_mb: float | None = None
    server_starts: int | None = None
    ttft_s: float | None = None
    decode_tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None


class MatrixCollector:
    """Accumulates payloads from any number of processes and builds the run's matrix."""

    def __init__(
        self,
        expectations: Expectations | None = None,
        *,
        server: str = LEGACY_SERVER,
        server_version: str | None = None,
    ) -> None:
        self.expectations = expectations or Expectations()
        self.server = server  # the run's server: rows whose payloads name none are its
        self.server_version = server_version
        # Keyed by (model, quant, server named by the payload, "" for the run's).
        self._cells: dict[tuple[str, str, str], dict[tuple[str, str], list[Cell]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._rows: dict[tuple[str, str, str], _RowFacts] = defaultdict(_RowFacts)
        self.warnings: list[str] = []

    @property
    def cell_count(self) -> int:
        return sum(len(cells) for row in self._cells.values() for cells in row.values())

    def add(self, name: str, payload: Any) -> bool:
        """Take a ``(name, payload)`` user property; returns False when it is not ours."""
        if name == CELL_PROPERTY:
            self.add_cell(payload)
        elif name == ROW_PROPERTY:
            self.add_row(payload)
        else:
            return False
        return True

    def add_cell(self, payload: Any) -> None:
        """One cell payload (see ``cell_payload``); ``PayloadError`` if it is malformed."""
        cell = cell_from_payload(payload)
        key = self._row_key(payload)
        self._cells[key][cell.key].append(cell)
        self._add_source(self._rows[key], payload)

    def add_row(self, payload: Any) -> None:
        """One row payload (see ``row_payload``); ``PayloadError`` if it is malformed."""
        try:
            if not all(isinstance(payload.get(name), str) for name in ("model", "quant")):
                raise ValueError("model and quant must be strings")
            startup_s = _optional_float(payload.get("startup_s"))
            memory_mb = _optional_float(payload.get("memory_mb"))
            starts = payload.get("server_starts")
            starts = None if starts is None else int(starts)
            ttft_s = _optional_float(payload.get("ttft_s"))
            decode = _optional_float(payload.get("decode_tokens_per_s"))
            prompt = _optional_float(payload.get("prompt_tokens_per_s"))
        except (AttributeError, TypeError, ValueError) as exc:
            raise PayloadError(f"a recorded row is malformed ({exc}): {payload!r:.200}") from None
        facts = self._rows[self._row_key(payload)]
        self._add_source(facts, payload)
        facts.startup_s = _max(facts.startup_s, startup_s)
        facts.memory_mb = _max(facts.memory_mb, memory_mb)
        if starts is not None:
            facts.server_starts = max(facts.server_starts or 0, starts)
        facts.ttft_s = _min(facts.ttft_s, ttft_s)
        facts.decode_tokens_per_s = _max(facts.decode_tokens_per_s, decode)
        facts.prompt_tokens_per_s = _max(facts.prompt_tokens_per_s, prompt)

    def _row_key(self, payload: dict[str, Any]) -> tuple[str, str, str]:
        """(model, quant, the server the payload names, or "" for the run's own)."""
        server = payload.get("server")
        own = server if isinstance(server, str) and server != self.server else ""
        return (payload["model"], payload["quant"], own)

    @staticmethod
    def _add_source(facts: _RowFacts, payload: dict[str, Any]) -> None:
        if payload.get("repo"):
            facts.repos.add(str(payload["repo"]))
        if payload.get("revision"):
            facts.revisions.add(str(payload["revision"]))
        if payload.get("server") and payload.get("server_version"):
            facts.server_versions.add(str(payload["server_version"]))

    def build(self, run: RunMetadata) -> Matrix:
        """One matrix for ``run``; rows appear for every model with a cell or row fact."""
        self.warnings = []
        rows = []
        for key in sorted(set(self._cells) | set(self._rows)):
            model, quant, own_server = key
            facts = self._rows.get(key, _RowFacts())
            server = own_server or self.server
            if own_server:
                version = self._single(model, quant, "server version", facts.server_versions)
            else:
                version = self.server_version
            cells = []
            for cell_key, recorded in sorted(self._cells.get(key, {}).items()):
                cell = self._pick(model, quant, cell_key, recorded)
                expectation = self.expectations.judge(
                    model=model,
                    quant=quant,
                    capability=cell.capability,
                    route=cell.route,
                    verdict=cell.verdict,
                    attribution=cell.attribution,
                    server=own_server or None,
                )
                cells.append(
                    cell.model_copy(update={"run_id": run.run_id, "expectation": expectation})
                )
            rows.append(
                Row(
                    model=model,
                    quant=quant,
                    server=server,
                    server_version=version,
                    profile=run.profile,
                    repo=self._single(model, quant, "repo", facts.repos),
                    revision=self._single(model, quant, "revision", facts.revisions),
                    startup_s=facts.startup_s,
                    memory_mb=facts.memory_mb,
                    server_starts=facts.server_starts,
                    ttft_s=facts.ttft_s,
                    decode_tokens_per_s=facts.decode_tokens_per_s,
                    prompt_tokens_per_s=facts.prompt_tokens_per_s,
                    cells=cells,
                )
            )
        return Matrix(runs=[run], rows=rows).sorted()

    def _pick(self, model: str, quant: str, key: tuple[str, str], recorded: list[Cell]) -> Cell:
        ranked = sorted(recorded, key=lambda c: (-_VERDICT_WEIGHT[c.verdict], c.test_id or ""))
        verdicts = sorted({c.verdict.value for c in recorded})
        if len(verdicts) > 1:
            self.warnings.append(
                f"{model} [{quant}] {key[0]} ({key[1]}) was recorded {len(recorded)} times with "
                f"verdicts {', '.join(verdicts)}; the matrix keeps {ranked[0].verdict.value} "
                f"from {ranked[0].test_id}"
            )
        return ranked[0]

    def _single(self, model: str, quant: str, name: str, values: set[str]) -> str | None:
        if len(values) > 1:
            chosen = sorted(values)[0]
            self.warnings.append(
                f"{model} [{quant}] was recorded with several {name}s "
                f"({', '.join(sorted(values))}); the matrix shows {chosen}"
            )
            return chosen
        return next(iter(values), None)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _max(current: float | None, new: float | None) -> float | None:
    if new is None:
        return current
    return new if current is None else max(current, new)


def _min(current: float | None, new: float | None) -> float | None:
    if new is None:
        return current
    return new if current is None else min(current, new)
