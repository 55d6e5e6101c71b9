"""Structural (offline) checks: entries that load but would mislead a user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from catalog_helpers import PLAIN_TEMPLATE, TOOL_TEMPLATE, entry, model_files

from pytest_mlxstack.catalog import CatalogEntry
from pytest_mlxstack.catalog.checks import (
    check_benchmarks,
    check_disk_size,
    check_int4_source,
    check_local_files,
    source_checks,
)


def build(**changes: Any) -> CatalogEntry:
    """A valid entry with changes; the benchmark follows the first source's quantization."""
    data = entry(**changes)
    if "benchmarks" not in changes:
        first = next(iter(data["sources"]))
        data["benchmarks"] = {"m4-pro-48gb": {"quant": first, "gen_tps": 40, "memory_gb": 5.1}}
    return CatalogEntry.model_validate(data)


def test_valid_entry_passes() -> None:
    e = build()
    assert check_int4_source(e) == []
    assert check_benchmarks(e) == []
    assert check_disk_size(e, "int4") == []


def test_entry_without_int4_fails_naming_what_it_has() -> None:
    e = build(sources={"int8": {"hf_repo": "a/b", "disk_size_gb": 8.7}})
    (problem,) = check_int4_source(e)
    assert "has no int4 source (it has int8)" in problem
    assert "add sources.int4" in problem


def test_local_only_entries_need_no_int4(tmp_path: Path) -> None:
    e = build(sources={"fp32": {"local_path": str(tmp_path)}})
    assert check_int4_source(e) == []
    mixed = build(
        sources={
            "fp32": {"local_path": str(tmp_path)},
            "int8": {"hf_repo": "a/b", "disk_size_gb": 8.7},
        }
    )
    assert len(check_int4_source(mixed)) == 1


def test_no_benchmarks_fails() -> None:
    (problem,) = check_benchmarks(build(benchmarks={}))
    assert "has no benchmarks" in problem
    assert "m4-pro-48gb" in problem


def test_only_unknown_profiles_fail_with_a_suggestion() -> None:
    e = build(benchmarks={"m4-pro-48g": {"gen_tps": 40, "memory_gb": 5}})
    (problem,) = check_benchmarks(e)
    assert "only for unknown hardware profiles (m4-pro-48g)" in problem
    assert "did you mean m4-pro-48gb?" in problem


def test_unknown_profile_beside_a_known_one_is_fine() -> None:
    benches = {
        "my-lab-box": {"gen_tps": 40, "memory_gb": 5},
        "m1-8gb": {"gen_tps": 9, "memory_gb": 5},
    }
    assert check_benchmarks(build(benchmarks=benches)) == []


def test_benchmark_needing_more_memory_than_the_machine_fails() -> None:
    e = build(benchmarks={"m1-8gb": {"gen_tps": 9, "memory_gb": 12}})
    (problem,) = check_benchmarks(e)
    assert "12 GB of memory, more than the 8 GB" in problem


@pytest.mark.parametrize(
    ("params_b", "quant", "size", "ok"),
    [
        (8.2, "int4", 4.6, True),  # the real Qwen3-8B-4bit
        (1.0, "int4", 0.73, True),  # gemma-3-1b: big unquantized embeddings
        (8.2, "int4", 16.4, False),  # a bf16 size written under int4
        (8.2, "bf16", 16.4, True),
        (8.2, "int8", 1.0, False),
        (70, "int4", 4.0, False),  # params_b written for the wrong model
    ],
)
def test_disk_size_must_fit_params_and_quantization(
    params_b: float, quant: str, size: float, ok: bool
) -> None:
    e = build(params_b=params_b, sources={quant: {"hf_repo": "a/b", "disk_size_gb": size}})
    problems = check_disk_size(e, quant)
    assert (problems == []) is ok
    if not ok:
        assert f"sources.{quant}.disk_size_gb is {size:g} GB" in problems[0]
        assert "correct disk_size_gb or params_b" in problems[0]


def write_model(folder: Path, files: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else str(content).encode()
        (folder / name).write_bytes(data)
    return folder


def local_entry(folder: Path, **caps: Any) -> CatalogEntry:
    capabilities = caps or {"tool_calling": True, "tool_call_parser": "hermes"}
    return build(sources={"int4": {"local_path": str(folder)}}, capabilities=capabilities)


def test_complete_local_model_passes(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", model_files())
    e = local_entry(folder)
    assert set(source_checks(e, "int4")) == {"local_files"}
    assert check_local_files(e, "int4") == []


def test_missing_local_folder_fails(tmp_path: Path) -> None:
    (problem,) = check_local_files(local_entry(tmp_path / "absent"), "int4")
    assert "does not exist; build the model there or correct local_path" in problem


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("config.json", "has no config.json"),
        ("model.safetensors", "has no *.safetensors weights"),
        ("tokenizer.json", "has no tokenizer"),
        ("tokenizer_config.json", "has no chat template"),
    ],
)
def test_local_folder_lacking_a_file_fails(tmp_path: Path, drop: str, expected: str) -> None:
    files = model_files()
    del files[drop]
    (problem,) = check_local_files(local_entry(write_model(tmp_path / "m", files)), "int4")
    assert expected in problem


def test_bpe_vocab_and_merges_count_as_a_tokenizer(tmp_path: Path) -> None:
    files = model_files()
    del files["tokenizer.json"]
    files |= {"vocab.json": "{}", "merges.txt": "#version: 0.2\n"}
    assert check_local_files(local_entry(write_model(tmp_path / "m", files)), "int4") == []


def test_tool_model_with_a_template_that_drops_tools_fails(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", model_files(template=PLAIN_TEMPLATE))
    (problem,) = check_local_files(local_entry(folder), "int4")
    assert "never reads `tools`" in problem
    no_tools = local_entry(folder, tool_calling=False)
    assert check_local_files(no_tools, "int4") == []


def test_chat_template_jinja_file_wins_over_tokenizer_config(tmp_path: Path) -> None:
    files = model_files(template=PLAIN_TEMPLATE)
    files["chat_template.jinja"] = TOOL_TEMPLATE
    assert check_local_files(local_entry(write_model(tmp_path / "m", files)), "int4") == []


def test_unparsable_template_fails(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", model_files(template="{% if tools %}unclosed"))
    (problem,) = check_local_files(local_entry(folder), "int4")
    assert "chat template Jinja cannot parse" in problem


def test_config_without_model_type_fails(tmp_path: Path) -> None:
    files = model_files()
    files["config.json"] = json.dumps({"hidden_size": 8})
    (problem,) = check_local_files(local_entry(write_model(tmp_path / "m", files)), "int4")
    assert "config.json has no model_type" in problem
