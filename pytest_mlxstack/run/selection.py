"""Which built-in suites run, and on which (model, quantization) targets of a catalog.

Plain functions without pytest so that the main job and other harnesses select the same way;
every mistake is a ``SelectionError`` sentence naming the option, the value and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pytest_mlxstack.catalog import Catalog, CatalogEntry, Source
from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.stack.spec import TIER_NAME_LIMIT, tier_slug

SUITES = ("smoke", "integration", "harness")
ALL = "all"


class SelectionError(MlxStackError, ValueError):
    """A suite or model selection that names something that does not exist."""


@dataclass(frozen=True)
class SuiteTarget:
    """One catalog model at one quantization, served as one tier of the suite stack."""

    entry: CatalogEntry
    quant: str
    tier: str

    @property
    def label(self) -> str:
        """The readable test-id part, e.g. ``tiny-chat-bf16``."""
        return f"{self.entry.id}-{self.quant}"

    @property
    def source(self) -> Source:
        return self.entry.sources[self.quant]


def parse_suites(text: str, *, where: str = "--mlx-suites") -> tuple[str, ...]:
    """``"all"`` or a comma-separated subset of ``SUITES``, in the canonical order."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if not names or ALL in names:
        return SUITES
    unknown = sorted(names - set(SUITES))
    if unknown:
        raise SelectionError(
            f"{where}: {unknown[0]!r} is not a built-in suite; use {ALL} or a comma-separated "
            f"list of {', '.join(SUITES)}"
        )
    return tuple(name for name in SUITES if name in names)


def split_model_args(values: Iterable[str]) -> list[str]:
    """Repeated and comma-separated ``--mlx-models`` values as one flat list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def select_targets(
    catalog: Catalog, requested: Iterable[str], *, where: str = "--mlx-models"
) -> list[SuiteTarget]:
    """``ID`` (every quantization of the entry) or ``ID:QUANT``; nothing requested: all."""
    picked: list[tuple[CatalogEntry, str]] = []
    wanted = list(requested)
    if not wanted:
        picked = [(entry, quant) for entry in catalog for quant in entry.sources]
    for item in wanted:
        model_id, _, quant = item.partition(":")
        if model_id not in catalog.ids:
            raise SelectionError(
                f"{where}: {model_id!r} is not in the catalog {catalog.path}; choose from "
                f"{', '.join(catalog.ids)}"
            )
        entry = catalog.get(model_id)
        if quant and quant not in entry.sources:
            raise SelectionError(
                f"{where}: {model_id!r} has no {quant!r} source in {catalog.path}; choose "
                f"from {', '.join(entry.sources)} or give the id alone"
            )
        for each in [quant] if quant else list(entry.sources):
            if (entry, each) not in picked:
                picked.append((entry, each))
    return _with_tier_names(picked)


def _with_tier_names(picked: list[tuple[CatalogEntry, str]]) -> list[SuiteTarget]:
    """Tier names are the target labels, made valid (``[a-z0-9_-]``, 40 chars) and unique."""
    targets: list[SuiteTarget] = []
    used: set[str] = set()
    for entry, quant in picked:
        base = tier_slug(f"{entry.id}-{quant}")
        name, number = base, 1
        while name in used:
            number += 1
            suffix = f"-{number}"
            name = base[: TIER_NAME_LIMIT - len(suffix)] + suffix
        used.add(name)
        targets.append(SuiteTarget(entry, quant, name))
    return targets
