"""From a tier to the model folder vllm-mlx serves, its served name and its parsers.

Catalog tiers are looked up in the stack's catalog, or (none given) in the shipped catalog and
then the fixture-model catalog, so ``tiny-chat`` works out of the box. Local sources resolve to
their folder; Hub sources go through the model cache, so a stack never downloads behind
vllm-mlx's back (vllm-mlx is always handed a local folder and runs with the Hub offline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_mlxstack.catalog import Catalog, CatalogEntry, CatalogError, Source, load_catalog
from pytest_mlxstack.process.cache import ModelCacheError
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.stack.flags import ParserChoice
from pytest_mlxstack.stack.kinds import get_kind
from pytest_mlxstack.stack.spec import StackSpec, TierSpec

# (repo, revision) -> local folder; the core model cache in production.
PullFunction = Callable[[str, "str | None"], Path]


@dataclass(frozen=True)
class ResolvedModel:
    """What a tier serves: a local folder, the name clients use, the parsers it needs."""

    path: Path
    served_name: str
    parsers: ParserChoice
    label: str  # catalog id (and quantization) or folder, for tables
    memory_gb: float | None = None  # the catalog's largest measured/estimated peak for it


def resolve_tier(
    tier: TierSpec,
    *,
    catalogs: Sequence[Catalog],
    pull: PullFunction | None = None,
    spec: StackSpec | None = None,
) -> ResolvedModel:
    """Resolve one tier; ``catalogs`` are ``Catalog`` objects searched in order. ``spec`` is
    the stack the tier belongs to: an unknown model's hint depends on where it came from."""
    if tier.path is not None:
        folder = _existing_model(tier.path, f"tier '{tier.name}' path", tier.kind)
        chosen = ParserChoice(tier.tool_call_parser, tier.reasoning_parser)
        _check_parsers(tier, chosen, "its parser settings")
        return ResolvedModel(
            path=folder,
            served_name=tier.served_name or folder.name,
            parsers=chosen,
            label=str(folder),
        )
    assert tier.model is not None
    entry = _find_entry(tier.model, catalogs, tier.name, spec)
    quant, source = _pick_source(entry, tier)
    if source.local_path is not None:
        folder = _existing_model(
            Path(source.local_path), f"catalog entry '{entry.id}' source {quant}", tier.kind
        )
    else:
        if pull is None:
            raise StackError(
                f"Tier '{tier.name}': model '{entry.id}' ({quant}) comes from the Hub "
                f"({source.hf_repo}) but no model cache was given; pass a ModelCache"
            )
        assert source.hf_repo is not None
        try:
            folder = pull(source.hf_repo, source.revision)
        except ModelCacheError as exc:
            raise StackError(f"Tier '{tier.name}': {exc}") from None
    capabilities = entry.capabilities
    parsers = ParserChoice(
        capabilities.tool_call_parser if capabilities.tool_calling else None,
        capabilities.reasoning_parser if capabilities.thinking else None,
    )
    _check_parsers(tier, parsers, f"catalog entry '{entry.id}'")
    peaks = [bench.memory_gb for bench in entry.benchmarks.values() if bench.quant == quant]
    return ResolvedModel(
        path=folder,
        served_name=tier.served_name or entry.id,
        parsers=parsers,
        label=f"{entry.id}:{quant}",
        memory_gb=max(peaks, default=None),
    )


def _check_parsers(tier: TierSpec, parsers: ParserChoice, declared_by: str) -> None:
    """The tier's server kind must parse what the model's entry (or the tier) names."""
    problem = get_kind(tier.kind).parser_problem(parsers)
    if problem is not None:
        raise StackError(
            f"Tier '{tier.name}' ({tier.kind}): {declared_by} names a {problem}; serve it "
            "with another kind or change the parser"
        )


def load_catalogs(spec: StackSpec) -> list[Catalog]:
    """The stack's catalog, or the shipped catalog followed by the fixture-model catalog."""
    try:
        if spec.catalog is not None:
            return [load_catalog(spec.catalog)]
        catalogs = [load_catalog()]
        fixture = _fixture_catalog_path()
        if fixture is not None and fixture.exists():
            catalogs.append(load_catalog(fixture))
        return catalogs
    except CatalogError as exc:
        raise StackError(str(exc).rstrip(".")) from None


def needs_catalog(spec: StackSpec) -> bool:
    return any(tier.model is not None for tier in spec.tiers)


def _fixture_catalog_path() -> Path | None:
    try:
        from pytest_mlxstack.fixture_models import fixture_catalog_path
    except ImportError:  # the fixture models are not part of this installation
        return None
    path: Path = fixture_catalog_path()
    return path


def _find_entry(
    model: str, catalogs: Sequence[Catalog], tier: str, spec: StackSpec | None
) -> CatalogEntry:
    known: list[str] = []
    for catalog in catalogs:
        if model in catalog.ids:
            return catalog.get(model)
        known += catalog.ids
    where = ", ".join(str(catalog.path) for catalog in catalogs)
    choices = ", ".join(sorted(set(known)))
    if spec is not None and spec.source is not None:  # a stack file: the fix is in that file
        catalog_fix = (
            "point 'catalog:' at a catalog that has it"
            if spec.catalog is not None
            else "add 'catalog:' to the stack file"
        )
        raise StackError(
            f"Stack file {spec.source}, tier '{tier}': unknown model '{model}' (looked in "
            f"{where}); use one of {choices}, {catalog_fix} or fix the model id"
        )
    raise StackError(
        f"Tier '{tier}': unknown model '{model}' (looked in {where}); use one of {choices}, "
        "or pass a catalog that has it (mlxstack up --model ... --catalog PATH; catalog: in "
        "a stack file or StackSpec)"
    )


def _pick_source(entry: CatalogEntry, tier: TierSpec) -> tuple[str, Source]:
    if tier.quant is None:
        quant = next(iter(entry.sources))
        return quant, entry.sources[quant]
    if tier.quant not in entry.sources:
        raise StackError(
            f"Tier '{tier.name}': model '{entry.id}' has no '{tier.quant}' source; use one of "
            f"{', '.join(entry.sources)}"
        )
    return tier.quant, entry.sources[tier.quant]


def _existing_model(path: Path, what: str, kind: str) -> Path:
    """``path`` resolved, if it is a model ``kind`` serves (a folder for the MLX servers)."""
    model = path.expanduser().resolve()
    problem = get_kind(kind).model_problem(model)
    if problem is not None:
        raise StackError(f"The {what} {model} {problem}")
    return model
