"""Structural (offline) checks of catalog entries: policies a schema-valid entry can still break.

The schema (``pytest_mlxstack.catalog``) rejects entries that cannot be used at all. These checks
judge entries that load fine but would mislead a user: no int4 source, no benchmark on a known
machine, a disk size that does not fit the parameter count, a local model folder that lacks the
files vllm-mlx needs. Each check returns a list of problems, each one sentence with its fix; an
empty list means the check passed.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path

from pytest_mlxstack.catalog import BYTES_PER_PARAM, KNOWN_PROFILES, CatalogEntry
from pytest_mlxstack.catalog.modelfiles import (
    chat_template_from,
    has_tokenizer,
    judge_template,
    template_candidates,
    weight_files,
)

# A disk size outside [low, high] x the estimate from params_b is not plausible. The window is
# wide because embeddings, vision towers and MoE routers are often left unquantized.
DISK_SIZE_WINDOW = (0.6, 1.6)
REQUIRED_QUANT = "int4"

EntryCheck = Callable[[CatalogEntry], list[str]]
SourceCheck = Callable[[CatalogEntry, str], list[str]]


def expected_disk_size_gb(params_b: float, quant: str) -> float:
    """Weights on disk for ``params_b`` billion parameters at ``quant`` (GB, 1e9 bytes)."""
    return params_b * BYTES_PER_PARAM[quant]


def check_int4_source(entry: CatalogEntry) -> list[str]:
    """Every published model offers int4, the quantization most users can run.

    Entries whose sources are all local folders (fixture models built for tests) are exempt.
    """
    if REQUIRED_QUANT in entry.sources or all(s.is_local for s in entry.sources.values()):
        return []
    return [
        f"has no {REQUIRED_QUANT} source (it has {', '.join(entry.sources)}); add sources.int4 "
        "with the 4-bit repository"
    ]


def check_benchmarks(entry: CatalogEntry) -> list[str]:
    """At least one benchmark on a known hardware profile, and none that cannot fit in memory."""
    if not entry.benchmarks:
        return [
            "has no benchmarks; add benchmarks for a known hardware profile such as m4-pro-48gb "
            "(gen_tps and memory_gb at least)"
        ]
    problems = []
    known = [name for name in entry.benchmarks if name in KNOWN_PROFILES]
    if not known:
        unknown = list(entry.benchmarks)
        close = difflib.get_close_matches(unknown[0], list(KNOWN_PROFILES), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(
            f"has benchmarks only for unknown hardware profiles ({', '.join(unknown)}){hint}; "
            f"use a known profile name: {', '.join(KNOWN_PROFILES)}"
        )
    for name in known:
        profile = KNOWN_PROFILES[name]
        bench = entry.benchmarks[name]
        if profile.memory_gb and bench.memory_gb > profile.memory_gb:
            problems.append(
                f"benchmark {name} reports {bench.memory_gb:g} GB of memory, more than the "
                f"{profile.memory_gb} GB that machine has; correct memory_gb or the profile"
            )
    return problems


def check_disk_size(entry: CatalogEntry, quant: str) -> list[str]:
    """``disk_size_gb`` must fit the parameter count at that quantization."""
    size = entry.sources[quant].disk_size_gb
    if size is None:
        return []
    expected = expected_disk_size_gb(entry.params_b, quant)
    ratio = size / expected
    low, high = DISK_SIZE_WINDOW
    if low <= ratio <= high:
        return []
    return [
        f"sources.{quant}.disk_size_gb is {size:g} GB, {ratio:.1f}x what {entry.params_b:g} B "
        f"parameters take at {quant} (about {expected:.2f} GB); correct disk_size_gb or params_b"
    ]


def check_local_files(entry: CatalogEntry, quant: str) -> list[str]:
    """A local model folder must hold what vllm-mlx loads: config, weights, tokenizer, template."""
    source = entry.sources[quant]
    folder = source.local_path
    if folder is None:
        return []
    where = f"sources.{quant}.local_path {folder}"
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        return [f"{where} {what}; build the model there or correct local_path"]
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    problems = []
    problems += _config_problems(folder / "config.json", where)
    if not weight_files(names):
        problems.append(f"{where} has no *.safetensors weights; save the MLX weights there")
    if not has_tokenizer(names):
        problems.append(
            f"{where} has no tokenizer (tokenizer.json, tokenizer.model or vocab.json with "
            "merges.txt); save the tokenizer there"
        )
    template = _local_template(folder, names)
    problems += template_problems(entry, template, where)
    return problems


def template_problems(entry: CatalogEntry, template: str | None, where: str) -> list[str]:
    """No template, a template Jinja cannot parse, or a tool model whose template drops tools."""
    if template is None:
        return [
            f"{where} has no chat template (chat_template.jinja or chat_template in "
            "tokenizer_config.json); add the model's chat template"
        ]
    verdict = judge_template(template)
    if not verdict.valid:
        return [f"{where} has a chat template Jinja cannot parse ({verdict.error}); fix it"]
    if entry.capabilities.tool_calling and not verdict.handles_tools:
        return [
            f"{where} has a chat template that never reads `tools`, so tool definitions never "
            "reach the model; use a template that renders tools or set tool_calling: false"
        ]
    return []


def _config_problems(config: Path, where: str) -> list[str]:
    if not config.is_file():
        return [f"{where} has no config.json; save the model config there"]
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{where}/config.json is not valid JSON ({exc}); rewrite it"]
    if not isinstance(data, dict) or "model_type" not in data:
        return [f"{where}/config.json has no model_type; write the architecture's model_type"]
    return []


def _local_template(folder: Path, names: set[str]) -> str | None:
    for candidate in template_candidates(names):
        try:
            text = (folder / candidate).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        template = chat_template_from(candidate, text)
        if template is not None:
            return template
    return None


ENTRY_CHECKS: dict[str, EntryCheck] = {
    "int4_source": check_int4_source,
    "benchmarks": check_benchmarks,
}


def source_checks(entry: CatalogEntry, quant: str) -> dict[str, SourceCheck]:
    """The per-source structural checks that apply to this source."""
    checks: dict[str, SourceCheck] = {}
    if entry.sources[quant].disk_size_gb is not None:
        checks["disk_size"] = check_disk_size
    if entry.sources[quant].is_local:
        checks["local_files"] = check_local_files
    return checks
