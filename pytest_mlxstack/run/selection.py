"""Which built-in suites run, and on which (model, quantization) targets of a catalog.

Plain functions without pytest so that the main job and other harnesses select the same way;
every mistake is a ``SelectionError`` sentence naming the option, the value and the fix.

A fleet splits one selection over several machines with ``--mlx-shard K/N``: the targets are
sorted by label (``tiny-chat-bf16``) and dealt round-robin, the i-th (from 0) to shard
``i % N + 1``. The split depends only on the labels, so every machine computes the same one,
and the shards are as even as they can be (sizes differ by at most one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pytest_mlxstack.catalog import Catalog, CatalogEntry, Source
from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.stack.spec import TIER_NAME_LIMIT, tier_slug

SUITES = ("smoke", "integration", "harness")
SHARD_EXAMPLE = "1/2"
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


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 1) of ``total``: the part of a selection one machine runs."""

    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str, *, where: str = "--mlx-shard") -> Shard:
    """``K/N`` with whole numbers ``1 <= K <= N``; anything else one sentence naming ``where``."""
    index_text, slash, total_text = text.strip().partition("/")
    fix = f"write K/N with whole numbers 1 <= K <= N, such as {SHARD_EXAMPLE}"
    numbers = (index_text.strip(), total_text.strip())
    if not slash or not all(part.isascii() and part.isdigit() for part in numbers):
        raise SelectionError(f"{where}: {text!r} is not a shard K/N; {fix}")
    index, total = int(index_text), int(total_text)
    if total < 1:
        raise SelectionError(f"{where}: {text!r} splits into {total} shards; {fix}")
    if not 1 <= index <= total:
        raise SelectionError(f"{where}: {text!r} names shard {index} of {total}; {fix}")
    return Shard(index, total)


def shard_targets(
    targets: list[SuiteTarget], shard: Shard, *, where: str = "--mlx-shard"
) -> list[SuiteTarget]:
    """The targets of ``shard`` (sorted by label, dealt round-robin), in their original order.

    An empty shard is a ``SelectionError``: a job that ran nothing must not go green."""
    order = sorted(targets, key=lambda target: (target.label, target.tier))
    mine = {id(target) for i, target in enumerate(order) if i % shard.total == shard.index - 1}
    picked = [target for target in targets if id(target) in mine]
    if not picked:
        count = len(targets)
        raise SelectionError(
            f"{where}: shard {shard} has no model: the selection holds {count} "
            f"target{'' if count == 1 else 's'} for {shard.total} shards; use at most "
            f"{max(count, 1)} shards or select more models"
        )
    return picked
