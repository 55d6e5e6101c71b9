"""What a stack is made of: tiers (one vllm-mlx server each) and the LiteLLM proxy in front.

A spec is plain data, checked when it is built: a stack file with a typo fails before any process
starts, with one ``StackSpecError`` sentence that names the file, the field and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.process.textfiles import FileReadError, read_text_file
from pytest_mlxstack.process.yamlfiles import YamlError, load_yaml
from pytest_mlxstack.stack.flags import FlagError
from pytest_mlxstack.stack.kinds import DEFAULT_KIND, KIND_NAMES, KINDS

# A hand-written file of a few KB; anything this big is a wrong path.
MAX_STACK_FILE_BYTES = 2**20

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SERVED_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
RESERVED_NAMES = frozenset({"litellm"})
DEFAULT_MODEL = "tiny-chat"
DEFAULT_TIER = "fast"
TIER_NAME_LIMIT = 40
DEFAULT_START_TIMEOUT = 180.0
DEFAULT_REQUEST_TIMEOUT = 120.0

_TIER_KEYS = frozenset(
    {
        "kind",
        "model",
        "quant",
        "path",
        "served_name",
        "port",
        "continuous_batching",
        "paged_cache",
        "flags",
        "tool_call_parser",
        "reasoning_parser",
        "start_timeout",
    }
)
_LITELLM_KEYS = frozenset({"enabled", "port", "request_timeout", "start_timeout"})
_TOP_KEYS = frozenset({"catalog", "tiers", "litellm"})


class StackSpecError(MlxStackError, ValueError):
    """A stack description that cannot be used, told in one sentence: where, what, how to fix."""

    def __init__(
        self, problem: str, fix: str, *, file: Path | None = None, field: str = ""
    ) -> None:
        self.file = file
        self.field = field
        where = [f"Stack file {file}" if file is not None else "Stack"]
        if field:
            where.append(f"field '{field}'")
        super().__init__(problem, fix, where=", ".join(where))


@dataclass(frozen=True)
class TierSpec:
    """One vllm-mlx server: a catalog model (and quantization) or a local model folder.

    ``port=None`` means a free port is allocated at start. ``tool_call_parser`` and
    ``reasoning_parser`` are only for ``path`` tiers: a catalog entry declares its own.
    """

    name: str
    model: str | None = None
    quant: str | None = None
    path: Path | None = None
    served_name: str | None = None
    port: int | None = None
    continuous_batching: bool = False
    paged_cache: bool = False
    flags: tuple[str, ...] = ()
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT
    kind: str = DEFAULT_KIND  # the server program (``stack/kinds/``)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise _tier_error(
                self.name,
                "kind",
                f"'{self.kind}' is not a server kind pytest-mlxstack can start",
                f"use one of {', '.join(KIND_NAMES)}",
            )
        if not NAME_PATTERN.match(self.name) or self.name in RESERVED_NAMES:
            raise _tier_error(
                self.name,
                "",
                f"'{self.name}' is not a usable tier name",
                "use lower-case letters, digits, '-' or '_' (at most 40, not 'litellm'), e.g. fast",
            )
        if (self.model is None) == (self.path is None):
            both = self.model is not None
            raise _tier_error(
                self.name,
                "path" if both else "model",
                "has both model and path" if both else "has neither model nor path",
                "give a catalog model id (model: tiny-chat) or a local folder (path: ./my-model)",
            )
        if self.path is not None and self.quant is not None:
            raise _tier_error(
                self.name, "quant", "is set for a local path", "remove quant or use model: ID"
            )
        if self.model is not None and (self.tool_call_parser or self.reasoning_parser):
            which = "tool_call_parser" if self.tool_call_parser else "reasoning_parser"
            raise _tier_error(
                self.name,
                which,
                "is set for a catalog model, whose entry already declares its parsers",
                f"remove {which} or fix the catalog entry's capabilities",
            )
        if self.served_name is not None and not SERVED_NAME_PATTERN.match(self.served_name):
            raise _tier_error(
                self.name,
                "served_name",
                f"'{self.served_name}' is not a usable served model name",
                "use letters, digits, '.', '_', '-' or '/'",
            )
        if self.port is not None and not 1024 <= self.port <= 65535:
            raise _tier_error(
                self.name, "port", f"{self.port} is out of range", "use 1024-65535 or auto"
            )
        if self.start_timeout <= 0:
            raise _tier_error(
                self.name, "start_timeout", "must be positive", "give seconds, e.g. 180"
            )
        if self.kind == DEFAULT_KIND and self.paged_cache and not self.continuous_batching:
            raise _tier_error(
                self.name,
                "paged_cache",
                "needs continuous batching, because vllm-mlx silently ignores the paged cache "
                "without it",
                "also set continuous_batching: true, or remove paged_cache",
            )
        try:
            KINDS[self.kind].check_flags(
                self.flags,
                continuous_batching=self.continuous_batching,
                paged_cache=self.paged_cache,
            )
        except FlagError as exc:
            raise _tier_error(self.name, "flags", exc.problem, exc.fix) from None


@dataclass(frozen=True)
class LiteLLMSpec:
    """The proxy in front of the tiers; ``enabled=False`` serves the tiers directly."""

    enabled: bool = True
    port: int | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    start_timeout: float = DEFAULT_START_TIMEOUT

    def __post_init__(self) -> None:
        if self.port is not None and not 1024 <= self.port <= 65535:
            raise StackSpecError(
                f"{self.port} is out of range", "use 1024-65535 or auto", field="litellm.port"
            )
        for name in ("request_timeout", "start_timeout"):
            if getattr(self, name) <= 0:
                raise StackSpecError(
                    "must be positive", "give seconds, e.g. 120", field=f"litellm.{name}"
                )


@dataclass(frozen=True)
class StackSpec:
    """Tiers plus LiteLLM; ``catalog`` is where tier model ids are looked up (None: defaults)."""

    tiers: tuple[TierSpec, ...]
    litellm: LiteLLMSpec = field(default_factory=LiteLLMSpec)
    catalog: Path | None = None
    source: Path | None = None  # the stack file it was read from, for messages

    def __post_init__(self) -> None:
        if not self.tiers:
            raise StackSpecError("has no tiers", "add at least one tier", field="tiers")
        names = [tier.name for tier in self.tiers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise StackSpecError(
                f"names tier '{duplicates[0]}' twice", "give each tier its own name", field="tiers"
            )
        ports = [p for p in (*(t.port for t in self.tiers), self.litellm.port) if p is not None]
        clashing = sorted({p for p in ports if ports.count(p) > 1})
        if clashing:
            raise StackSpecError(
                f"uses port {clashing[0]} twice",
                "give each service its own port or write auto",
                field="tiers",
            )

    def tier(self, name: str) -> TierSpec:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(f"no tier '{name}' in this stack (tiers: {', '.join(self.tier_names)})")

    @property
    def tier_names(self) -> list[str]:
        return [tier.name for tier in self.tiers]


def tier_slug(text: str, limit: int = TIER_NAME_LIMIT) -> str:
    """``text`` as a valid tier name: ``[a-z0-9_-]``, at most ``limit`` characters."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:limit] or "tier"


def default_stack_spec() -> StackSpec:
    """One tier ``fast`` on the shipped fixture model ``tiny-chat``, behind LiteLLM."""
    return StackSpec(tiers=(TierSpec(name=DEFAULT_TIER, model=DEFAULT_MODEL),))


def stack_spec_for_models(
    models: Sequence[str], *, catalog: Path | None = None, litellm: bool = True
) -> StackSpec:
    """One tier per catalog model, named after it (``ID`` or ``ID:QUANT``)."""
    tiers = []
    for text in models:
        model, _, quant = text.partition(":")
        name = tier_slug(model)
        tiers.append(TierSpec(name=name, model=model, quant=quant or None))
    return StackSpec(tiers=tuple(tiers), litellm=LiteLLMSpec(enabled=litellm), catalog=catalog)


def load_stack_file(path: Path | str) -> StackSpec:
    """Read a YAML stack file; relative ``path``/``catalog`` values are relative to the file."""
    file = Path(path).expanduser()
    try:
        text = read_text_file(file, max_bytes=MAX_STACK_FILE_BYTES)
    except FileReadError as exc:
        fix = (
            "pass the path of an existing YAML stack file"
            if "not exist" in exc.problem
            else "pass a readable UTF-8 YAML file"
        )
        raise StackSpecError(exc.problem, fix, file=file) from None
    try:
        data = load_yaml(text, one_document="a stack file is one mapping with tiers:")
    except YamlError as exc:
        raise StackSpecError(exc.problem, exc.fix, file=file) from None
    try:
        return stack_spec_from_mapping(data, base_dir=file.resolve().parent, source=file)
    except StackSpecError as exc:
        if exc.file is not None:
            raise
        raise StackSpecError(exc.problem, exc.fix, file=file, field=exc.field) from None


def stack_spec_from_mapping(
    data: object, *, base_dir: Path | None = None, source: Path | None = None
) -> StackSpec:
    """Build a spec from parsed YAML (``tiers`` as a mapping of name to settings)."""
    if not isinstance(data, Mapping):
        raise StackSpecError(
            "is not a mapping", "write top-level keys tiers: and optionally litellm:, catalog:"
        )
    _no_unknown_keys(data, _TOP_KEYS, "")
    tiers_data = data.get("tiers")
    if not isinstance(tiers_data, Mapping) or not tiers_data:
        raise StackSpecError(
            "is missing or not a mapping of tier names",
            "write e.g. tiers: {fast: {model: tiny-chat}}",
            field="tiers",
        )
    tiers = tuple(_tier(str(name), settings, base_dir) for name, settings in tiers_data.items())
    litellm = _litellm(data.get("litellm", {}))
    catalog = data.get("catalog")
    if catalog is not None and not isinstance(catalog, str):
        raise StackSpecError(
            "is not a path", "give the catalog folder or YAML file as text", field="catalog"
        )
    return StackSpec(
        tiers=tiers,
        litellm=litellm,
        catalog=_path(catalog, base_dir) if catalog else None,
        source=source,
    )


def _tier(name: str, settings: object, base_dir: Path | None) -> TierSpec:
    prefix = f"tiers.{name}"
    if not isinstance(settings, Mapping):
        raise StackSpecError(
            "is not a mapping", "write e.g. {model: tiny-chat} under the tier name", field=prefix
        )
    _no_unknown_keys(settings, _TIER_KEYS, prefix)
    path = settings.get("path")
    flags = settings.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, (str, int, float)) for f in flags):
        raise StackSpecError(
            "is not a list of strings",
            "write e.g. flags: ['--max-tokens', '512']",
            field=f"{prefix}.flags",
        )
    return TierSpec(
        name=name,
        model=_optional_str(settings, "model", prefix),
        quant=_optional_str(settings, "quant", prefix),
        path=_path(_optional_str(settings, "path", prefix), base_dir) if path else None,
        served_name=_optional_str(settings, "served_name", prefix),
        port=_port(settings.get("port"), f"{prefix}.port"),
        continuous_batching=_bool(settings, "continuous_batching", prefix),
        paged_cache=_bool(settings, "paged_cache", prefix),
        flags=tuple(str(f) for f in flags),
        tool_call_parser=_optional_str(settings, "tool_call_parser", prefix),
        reasoning_parser=_optional_str(settings, "reasoning_parser", prefix),
        start_timeout=_seconds(settings, "start_timeout", prefix, DEFAULT_START_TIMEOUT),
        kind=_optional_str(settings, "kind", prefix) or DEFAULT_KIND,
    )


def _litellm(settings: object) -> LiteLLMSpec:
    if settings is None:
        settings = {}
    if isinstance(settings, bool):
        return LiteLLMSpec(enabled=settings)
    if not isinstance(settings, Mapping):
        raise StackSpecError(
            "is not a mapping", "write e.g. litellm: {port: auto}", field="litellm"
        )
    _no_unknown_keys(settings, _LITELLM_KEYS, "litellm")
    return LiteLLMSpec(
        enabled=_bool(settings, "enabled", "litellm", default=True),
        port=_port(settings.get("port"), "litellm.port"),
        request_timeout=_seconds(settings, "request_timeout", "litellm", DEFAULT_REQUEST_TIMEOUT),
        start_timeout=_seconds(settings, "start_timeout", "litellm", DEFAULT_START_TIMEOUT),
    )


def _tier_error(tier: str, key: str, problem: str, fix: str) -> StackSpecError:
    return StackSpecError(problem, fix, field=f"tiers.{tier}.{key}" if key else f"tiers.{tier}")


def _no_unknown_keys(data: Mapping[Any, Any], known: frozenset[str], prefix: str) -> None:
    for key in data:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise StackSpecError(
                "is not a known key", f"use one of {', '.join(sorted(known))}", field=where
            )


def _optional_str(data: Mapping[str, Any], key: str, prefix: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise StackSpecError("is not a non-empty text", "quote the value", field=f"{prefix}.{key}")
    return value.strip()


def _bool(data: Mapping[str, Any], key: str, prefix: str, *, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise StackSpecError("is not true or false", "write true or false", field=f"{prefix}.{key}")
    return value


def _seconds(data: Mapping[str, Any], key: str, prefix: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StackSpecError("is not a number", "give seconds, e.g. 120", field=f"{prefix}.{key}")
    return float(value)


def _port(value: object, where: str) -> int | None:
    if value is None or value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StackSpecError(
            f"'{value}' is not a port", "give a number such as 8001, or auto", field=where
        )
    if not 1024 <= value <= 65535:
        raise StackSpecError(f"{value} is out of range", "use 1024-65535 or auto", field=where)
    return value


def _path(value: str | None, base_dir: Path | None) -> Path:
    assert value is not None
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path
