"""The pydantic v2 schema of a catalog entry (one model, its sources per quantization).

Rules that make an entry unusable (wrong types, unknown quantization, a parser vllm-mlx does not
have, ``tool_calling`` without a parser...) are enforced here, at load time. Each rule violation is
a ``catalog_rule`` error carrying the problem, the fix and the exact field, so that the loader can
turn it into one sentence. Quality policies that a valid entry may still break (an int4 source,
benchmarks on a known machine, a plausible disk size) live in ``pytest_mlxstack.catalog.checks``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pytest_mlxstack.catalog.parsers import (
    FALLBACK_REASONING_PARSERS,
    FALLBACK_TOOL_PARSERS,
    parser_registry,
)
from pytest_mlxstack.catalog.vocabulary import QUANTIZATIONS

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# The Hub's own rule for a repo id: namespace/name, letters, digits, '-', '_', '.', no '--'/'..'.
HF_REPO_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+(\.\d+)?$")
REVISION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")

PositiveFloat = Annotated[float, Field(gt=0)]
Score = Annotated[float, Field(ge=0, le=100)]


def rule_error(problem: str, fix: str, field: str | None = None) -> PydanticCustomError:
    """A schema rule violation; ``field`` refines the location below the validated field."""
    return PydanticCustomError(
        "catalog_rule", "{problem}; {fix}", {"problem": problem, "fix": fix, "field": field or ""}
    )


def _choices(names: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(names))


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must not silently fall back to a default.

    ``.inf`` and ``.nan`` are rejected too: they pass ``gt=0`` (or every comparison) and
    would poison sizes, speeds and scores.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Source(_Strict):
    """Where the weights of one quantization come from: a Hub repository or a local folder."""

    hf_repo: str | None = Field(
        default=None,
        description="Hub repository id, org/name.",
        json_schema_extra={"pattern": HF_REPO_PATTERN.pattern},
    )
    local_path: Path | None = Field(
        None, description="A model folder; relative paths are resolved against the YAML file."
    )
    revision: str | None = Field(
        default=None,
        description="Pinned branch, tag or commit sha.",
        json_schema_extra={"pattern": REVISION_PATTERN.pattern},
    )
    disk_size_gb: PositiveFloat | None = Field(
        None, description="Size of the weights on disk in GB (1e9 bytes)."
    )
    convert_from: str | None = Field(
        None, description="The upstream repository these weights were converted from."
    )

    @field_validator("hf_repo", "convert_from")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        if value is not None and (
            not HF_REPO_PATTERN.match(value) or "--" in value or ".." in value
        ):
            raise rule_error(
                f"'{value}' is not a Hub repository id",
                "write it as org/name, e.g. mlx-community/Qwen3-8B-4bit",
            )
        return value

    @field_validator("local_path")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is not None and not value.is_absolute() and base is not None:
            return (Path(base) / value).resolve()
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and not REVISION_PATTERN.match(value):
            raise rule_error(
                f"'{value}' is not a branch, tag or commit sha",
                "write a 40-character commit sha or a branch/tag name, or remove revision",
            )
        return value

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if (self.hf_repo is None) == (self.local_path is None):
            both = self.hf_repo is not None
            raise rule_error(
                "has both hf_repo and local_path" if both else "has neither hf_repo nor local_path",
                "give exactly one of hf_repo (org/name) or local_path (a folder)",
                "local_path" if both else "hf_repo",
            )
        if self.hf_repo is not None and self.disk_size_gb is None:
            raise rule_error(
                "is missing for a Hub source",
                "add disk_size_gb: the size of the weights in GB, e.g. 4.6",
                "disk_size_gb",
            )
        return self

    @property
    def is_local(self) -> bool:
        return self.local_path is not None

    @property
    def location(self) -> str:
        """The repository id or the folder, for messages."""
        return self.hf_repo if self.hf_repo is not None else str(self.local_path)


class Capabilities(_Strict):
    """What the model can do through vllm-mlx, and which parser makes it work."""

    tool_calling: bool = False
    tool_call_parser: str | None = Field(
        default=None, description="vllm-mlx --tool-call-parser name."
    )
    thinking: bool = False
    reasoning_parser: str | None = Field(
        default=None, description="vllm-mlx --reasoning-parser name."
    )
    vision: bool = False

    @model_validator(mode="after")
    def _parsers(self) -> Capabilities:
        registry = parser_registry()
        pairs = (
            ("tool_calling", self.tool_calling, "tool_call_parser", self.tool_call_parser,
             registry.tool_parsers),
            ("thinking", self.thinking, "reasoning_parser", self.reasoning_parser,
             registry.reasoning_parsers),
        )  # fmt: skip
        for flag_name, flag, parser_name, parser, known in pairs:
            if flag and parser is None:
                raise rule_error(
                    f"is missing although {flag_name} is true",
                    f"name the vllm-mlx parser ({_choices(known)}) or set {flag_name}: false",
                    parser_name,
                )
            if not flag and parser is not None:
                raise rule_error(
                    f"is set to '{parser}' although {flag_name} is false",
                    f"set {flag_name}: true or remove {parser_name}",
                    parser_name,
                )
            if parser is not None and parser not in known:
                raise rule_error(
                    f"'{parser}' is not a parser of {registry.origin}",
                    f"use one of {_choices(known)}",
                    parser_name,
                )
        return self


class Benchmark(_Strict):
    """Speed and memory of one quantization on one hardware profile, measured or estimated."""

    quant: str = Field(default="int4", description="Which source was measured.")
    gen_tps: PositiveFloat = Field(description="Generation, tokens per second.")
    memory_gb: PositiveFloat = Field(description="Peak memory in GB.")
    prompt_tps: PositiveFloat | None = Field(
        default=None, description="Prompt processing, tokens per second (when measured)."
    )
    kind: Literal["measured", "estimated"] = Field(
        default="measured", description="Whether the figures were measured or derived."
    )
    source: str | None = Field(default=None, description="Where the figures come from.")


class Evidence(_Strict):
    """Why we believe the repositories exist and the capabilities are right."""

    confidence: Literal["high", "medium", "low"]
    sources: list[str] = Field(default_factory=list)
    notes: str | None = None


class CatalogEntry(_Strict):
    """One model: identity, sources per quantization, capabilities, scores and benchmarks."""

    id: str = Field(
        description="Stable slug, e.g. qwen3-8b; used in test ids.",
        json_schema_extra={"pattern": ID_PATTERN.pattern},
    )
    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    params_b: PositiveFloat = Field(description="Total parameters in billions.")
    active_params_b: PositiveFloat | None = Field(
        default=None, description="Active parameters (MoE)."
    )
    architecture: str = Field(min_length=1, description="config.json model_type, e.g. qwen3.")
    min_mlx_lm_version: str = Field(
        description="Oldest mlx-lm that loads it, e.g. 0.25.2.",
        json_schema_extra={"pattern": VERSION_PATTERN.pattern},
    )
    sources: dict[str, Source] = Field(description="Weights per quantization (int4, int8, bf16).")
    capabilities: Capabilities = Field(default_factory=Capabilities)
    quality: dict[str, Score] = Field(default_factory=dict, description="Scores from 0 to 100.")
    benchmarks: dict[str, Benchmark] = Field(
        default_factory=dict, description="Per hardware profile, e.g. m4-pro-48gb."
    )
    tags: list[str] = Field(default_factory=list)
    gated: bool = Field(default=False, description="Whether the Hub asks for access approval.")
    private: bool = Field(
        default=False,
        description="Whether the Hub repositories are private: only accounts with access "
        "(HF_TOKEN) can see and download them, e.g. a team's own conversions.",
    )
    evidence: Evidence | None = None

    _file: Path | None = PrivateAttr(None)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise rule_error(
                f"'{value}' is not a slug",
                "use lowercase letters, digits, '.', '_' and '-', e.g. qwen3-8b",
            )
        return value

    @field_validator("min_mlx_lm_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not VERSION_PATTERN.match(value):
            raise rule_error(f"'{value}' is not a version", "write it like 0.25.2")
        return value

    @field_validator("sources")
    @classmethod
    def _quantizations(cls, value: dict[str, Source]) -> dict[str, Source]:
        if not value:
            raise rule_error("is empty", "add at least an int4 source with hf_repo or local_path")
        for quant in value:
            if quant not in QUANTIZATIONS:
                raise rule_error(
                    f"'{quant}' is not a known quantization",
                    f"use one of {_choices(set(QUANTIZATIONS))}",
                    quant,
                )
        return value

    @field_validator("benchmarks")
    @classmethod
    def _profiles(cls, value: dict[str, Benchmark]) -> dict[str, Benchmark]:
        for profile in value:
            if not ID_PATTERN.match(profile):
                raise rule_error(
                    f"'{profile}' is not a hardware profile name",
                    "use a lowercase slug such as m4-pro-48gb",
                    profile,
                )
        return value

    @model_validator(mode="after")
    def _benchmarked_sources(self) -> CatalogEntry:
        for profile, bench in self.benchmarks.items():
            if bench.quant not in self.sources:
                raise rule_error(
                    f"measures '{bench.quant}', which is not among the sources "
                    f"({', '.join(self.sources)})",
                    "set quant to one of the entry's sources",
                    f"benchmarks.{profile}.quant",
                )
        return self

    @property
    def file(self) -> Path | None:
        """The YAML file the entry was loaded from (None when built in code)."""
        return self._file

    def bind_file(self, file: Path) -> None:
        """Remember the YAML file (the loader calls this)."""
        self._file = file


def catalog_entry_json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to validate one catalog YAML file.

    Parser names are the built-in vllm-mlx 0.6.0 lists, so the exported file is the same on
    every machine; the loader itself checks against the installed vllm-mlx.
    """
    schema = CatalogEntry.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pytest-mlxstack catalog entry"
    schema["properties"]["sources"]["propertyNames"] = {"enum": sorted(QUANTIZATIONS)}
    schema["properties"]["benchmarks"]["propertyNames"] = {"pattern": ID_PATTERN.pattern}
    capabilities = schema["$defs"]["Capabilities"]["properties"]
    for name, known in (
        ("tool_call_parser", FALLBACK_TOOL_PARSERS),
        ("reasoning_parser", FALLBACK_REASONING_PARSERS),
    ):
        capabilities[name]["anyOf"] = [{"type": "string", "enum": sorted(known)}, {"type": "null"}]
    return schema
