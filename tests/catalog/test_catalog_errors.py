"""Every way a catalog can be broken ends in one sentence: file, entry, field, problem, fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from catalog_helpers import VALID_ENTRY, dump, entry
from conftest import WriteCatalog

from pytest_mlxstack.catalog import CatalogError, load_catalog


def _sources(**sources: Any) -> dict[str, Any]:
    return {"sources": sources}


def _caps(**caps: Any) -> dict[str, Any]:
    return {"capabilities": caps}


@dataclass(frozen=True)
class Case:
    """A broken catalog and what the sentence must name."""

    files: dict[str, Any]
    file: str | None  # file name the sentence names (None: the catalog folder itself)
    entry_id: str | None
    field: str | None
    fix: str  # a phrase of the fix
    target: str | None = None  # load this file name instead of the folder


# Two int4 sources in one file: plain YAML keeps the second and drops the first silently.
DUPLICATE_INT4 = dump(VALID_ENTRY).replace(
    "sources:\n", "sources:\n  int4:\n    hf_repo: org/other\n    disk_size_gb: 4.6\n", 1
)

CASES: dict[str, Case] = {
    "bad-yaml": Case(
        {"m.yaml": "id: x\nsources: {int4: [unclosed\n"},
        "m.yaml",
        None,
        None,
        "fix the YAML syntax",
    ),
    "missing-field": Case(
        {"m.yaml": entry(params_b=None)}, "m.yaml", "qwen3-8b", "params_b", "add params_b:"
    ),
    "wrong-type": Case(
        {"m.yaml": entry(params_b="eight")}, "m.yaml", "qwen3-8b", "params_b", "e.g. 8.2"
    ),
    "duplicate-id": Case(
        {"a.yaml": entry(), "b.yaml": entry()}, "b.yaml", "qwen3-8b", "id", "give each entry"
    ),
    "unknown-quantization": Case(
        {"m.yaml": entry(**_sources(int9={"hf_repo": "a/b", "disk_size_gb": 1}))},
        "m.yaml",
        "qwen3-8b",
        "sources.int9",
        "use one of bf16",
    ),
    "tool-calling-without-parser": Case(
        {"m.yaml": entry(**_caps(tool_calling=True))},
        "m.yaml",
        "qwen3-8b",
        "capabilities.tool_call_parser",
        "or set tool_calling: false",
    ),
    "tool-parser-vllm-mlx-lacks": Case(
        {"m.yaml": entry(**_caps(tool_calling=True, tool_call_parser="qwen35"))},
        "m.yaml",
        "qwen3-8b",
        "capabilities.tool_call_parser",
        "qwen3_xml",
    ),
    "reasoning-parser-vllm-mlx-lacks": Case(
        {"m.yaml": entry(**_caps(thinking=True, reasoning_parser="qwen3_5"))},
        "m.yaml",
        "qwen3-8b",
        "capabilities.reasoning_parser",
        "deepseek_r1",
    ),
    "thinking-without-parser": Case(
        {"m.yaml": entry(**_caps(thinking=True))},
        "m.yaml",
        "qwen3-8b",
        "capabilities.reasoning_parser",
        "or set thinking: false",
    ),
    "parser-without-capability": Case(
        {"m.yaml": entry(**_caps(tool_call_parser="hermes"))},
        "m.yaml",
        "qwen3-8b",
        "capabilities.tool_call_parser",
        "set tool_calling: true or remove tool_call_parser",
    ),
    "hf-repo-not-org-name": Case(
        {"m.yaml": entry(**_sources(int4={"hf_repo": "Qwen3-8B-4bit", "disk_size_gb": 4.6}))},
        "m.yaml",
        "qwen3-8b",
        "sources.int4.hf_repo",
        "write it as org/name",
    ),
    "hf-repo-double-dash": Case(
        {"m.yaml": entry(**_sources(int4={"hf_repo": "org/a--b", "disk_size_gb": 4.6}))},
        "m.yaml",
        "qwen3-8b",
        "sources.int4.hf_repo",
        "org/name",
    ),
    "negative-size": Case(
        {"m.yaml": entry(**_sources(int4={"hf_repo": "a/b", "disk_size_gb": -4.6}))},
        "m.yaml",
        "qwen3-8b",
        "sources.int4.disk_size_gb",
        "greater than 0",
    ),
    "hub-source-without-size": Case(
        {"m.yaml": entry(**_sources(int4={"hf_repo": "a/b"}))},
        "m.yaml",
        "qwen3-8b",
        "sources.int4.disk_size_gb",
        "add disk_size_gb",
    ),
    "both-repo-and-folder": Case(
        {
            "m.yaml": entry(
                **_sources(int4={"hf_repo": "a/b", "local_path": "m", "disk_size_gb": 1})
            )
        },
        "m.yaml",
        "qwen3-8b",
        "sources.int4.local_path",
        "exactly one of hf_repo",
    ),
    "neither-repo-nor-folder": Case(
        {"m.yaml": entry(**_sources(int4={"disk_size_gb": 1}))},
        "m.yaml",
        "qwen3-8b",
        "sources.int4.hf_repo",
        "exactly one of hf_repo",
    ),
    "no-sources": Case(
        {"m.yaml": entry(sources={})}, "m.yaml", "qwen3-8b", "sources", "add at least an int4"
    ),
    "empty-catalog": Case({}, None, None, None, "add one YAML file per model"),
    "path-does-not-exist": Case({}, "nowhere.yaml", None, None, "pass an existing", "nowhere.yaml"),
    "empty-file": Case({"m.yaml": ""}, "m.yaml", None, None, "add one YAML file", "m.yaml"),
    "misspelt-field": Case(
        {"m.yaml": {**entry(params_b=None), "paramsb": 8.2}},
        "m.yaml",
        "qwen3-8b",
        "paramsb",
        "rename it to 'params_b'",
    ),
    "quality-out-of-range": Case(
        {"m.yaml": entry(quality={"overall": 140})},
        "m.yaml",
        "qwen3-8b",
        "quality.overall",
        "at most 100",
    ),
    "id-not-a-slug": Case(
        {"m.yaml": entry(id="Qwen3 8B")}, "m.yaml", "Qwen3 8B", "id", "lowercase letters"
    ),
    "version-as-number": Case(
        {"m.yaml": entry(min_mlx_lm_version=0.25)},
        "m.yaml",
        "qwen3-8b",
        "min_mlx_lm_version",
        'quoted, e.g. "0.25.2"',
    ),
    "benchmark-of-absent-quantization": Case(
        {"m.yaml": entry(benchmarks={"m1-8gb": {"quant": "int8", "gen_tps": 9, "memory_gb": 5}})},
        "m.yaml",
        "qwen3-8b",
        "benchmarks.m1-8gb.quant",
        "set quant to one of the entry's sources",
    ),
    "profile-name-not-a-slug": Case(
        {"m.yaml": entry(benchmarks={"M4 Max": {"gen_tps": 9, "memory_gb": 5}})},
        "m.yaml",
        "qwen3-8b",
        "benchmarks.M4 Max",
        "m4-pro-48gb",
    ),
    "unknown-confidence": Case(
        {"m.yaml": entry(evidence={"confidence": "certain"})},
        "m.yaml",
        "qwen3-8b",
        "evidence.confidence",
        "'high', 'medium' or 'low'",
    ),
    "entry-not-a-mapping": Case(
        {"m.yaml": "- just a string\n"}, "m.yaml", None, None, "key: value lines"
    ),
    "entry-without-id": Case(
        {"m.yaml": entry(id=None)}, "m.yaml", "<no id>", "id", "add id: a slug"
    ),
    "duplicate-key": Case(
        {"m.yaml": DUPLICATE_INT4}, "m.yaml", None, None, "keep one 'int4' there"
    ),
    "infinite-number": Case(
        {"m.yaml": dump(VALID_ENTRY).replace("params_b: 8.2", "params_b: .inf")},
        "m.yaml",
        "qwen3-8b",
        "params_b",
        "write a finite number",
    ),
    "nan-size": Case(
        {"m.yaml": entry(**_sources(int4={"hf_repo": "a/b", "disk_size_gb": float("nan")}))},
        "m.yaml",
        "qwen3-8b",
        "sources.int4.disk_size_gb",
        "write a finite number",
    ),
    "bad-revision": Case(
        {
            "m.yaml": entry(
                **_sources(int4={"hf_repo": "a/b", "disk_size_gb": 4.6, "revision": "a b"})
            )
        },
        "m.yaml",
        "qwen3-8b",
        "sources.int4.revision",
        "40-character commit sha",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_broken_catalog_is_one_sentence(case: Case, write_catalog: WriteCatalog) -> None:
    folder = write_catalog(case.files)
    target = folder / case.target if case.target else folder
    with pytest.raises(CatalogError) as caught:
        load_catalog(target)
    err = caught.value
    message = str(err)
    assert "\n" not in message, "one sentence, one line"
    assert message.endswith(".")
    expected_file = folder / case.file if case.file else folder
    assert err.file == str(expected_file)
    assert str(expected_file) in message
    assert err.entry_id == case.entry_id
    if case.entry_id is not None:
        assert f"entry '{case.entry_id}'" in message
    assert err.field == case.field
    if case.field is not None:
        assert f"field '{case.field}'" in message
    assert case.fix in err.fix
    assert case.fix in message
    for leak in ("validation error", "pydantic", "Traceback", "errors.pydantic.dev"):
        assert leak not in message


def test_there_are_at_least_twenty_distinct_cases() -> None:
    assert len(CASES) >= 20


def test_several_problems_say_how_many_more(write_catalog: WriteCatalog) -> None:
    folder = write_catalog({"m.yaml": entry(params_b="eight", family=None, name=None)})
    with pytest.raises(CatalogError, match=r"\(and 2 more problems in this entry\)\.$"):
        load_catalog(folder)


def test_duplicate_names_the_first_file(write_catalog: WriteCatalog) -> None:
    folder = write_catalog({"a.yaml": entry(), "b.yaml": entry()})
    with pytest.raises(CatalogError, match=r"is a duplicate of the entry in .*a\.yaml"):
        load_catalog(folder)


def test_yaml_error_names_the_line(write_catalog: WriteCatalog) -> None:
    folder = write_catalog({"m.yaml": "id: x\nname: {a: 1\n  b: 2\n"})
    with pytest.raises(CatalogError, match=r"is not valid YAML at line 3, column 4"):
        load_catalog(folder)


def test_yaml_error_at_the_end_cites_a_line_the_file_has(write_catalog: WriteCatalog) -> None:
    """PyYAML marks the end of the stream on the line after the last: line 3 of 2 lines."""
    folder = write_catalog({"m.yaml": "id: x\nsources: {int4: [unclosed\n"})
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    assert "is not valid YAML at the end of the file (line 2)" in str(caught.value)
    assert "a flow sequence that starts at line 2, column 17" in str(caught.value)
    assert "line 3" not in str(caught.value)


def test_duplicate_key_names_the_key_and_both_lines(write_catalog: WriteCatalog) -> None:
    folder = write_catalog({"m.yaml": DUPLICATE_INT4})
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    assert str(caught.value) == (
        f"Catalog file {folder / 'm.yaml'}: the key 'int4' appears twice in one mapping, at "
        "lines 8 and 11 (YAML would silently keep only the last); keep one 'int4' there: merge "
        "the two or remove one."
    )


def test_merge_keys_may_still_be_overridden(write_catalog: WriteCatalog) -> None:
    """``<<: *anchor`` then the same key is YAML's override, not a duplicate."""
    text = dump(VALID_ENTRY).replace(
        "benchmarks:\n  m4-pro-48gb:\n",
        "benchmarks:\n  m4-max-128gb: &bench {gen_tps: 40, memory_gb: 5.1}\n"
        "  m4-pro-48gb:\n    <<: *bench\n",
    )
    catalog = load_catalog(write_catalog({"m.yaml": text}))
    assert catalog.get("qwen3-8b").benchmarks["m4-pro-48gb"].gen_tps == 40


def test_unreadable_bytes_are_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_bytes(b"id: \xff\xfe\n")
    with pytest.raises(CatalogError, match=r"is not UTF-8 text .*save it as UTF-8 text"):
        load_catalog(tmp_path)


def test_the_valid_entry_used_above_loads(write_catalog: WriteCatalog) -> None:
    """Guards the table: each case breaks exactly what it names, not the base entry."""
    catalog = load_catalog(write_catalog({"m.yaml": dump(VALID_ENTRY)}))
    assert catalog.ids == ["qwen3-8b"]
