"""The shipped catalog, loading rules, the exported JSON Schema and the wheel's catalog_data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from catalog_helpers import entry
from conftest import WriteCatalog

from pytest_mlxstack.catalog import default_catalog_path, load_catalog, parser_registry
from pytest_mlxstack.catalog.checks import ENTRY_CHECKS, source_checks
from pytest_mlxstack.catalog.jsonschema import main as schema_main
from pytest_mlxstack.catalog.jsonschema import render_schema
from pytest_mlxstack.catalog.parsers import FALLBACK_REASONING_PARSERS, FALLBACK_TOOL_PARSERS

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "matrices" / "catalog-entry.schema.json"

# From ../shared/catalog-evidence.md, "ids that look real but have no evidence".
UNEVIDENCED = {
    "mlx-community/Qwen3.5-8B-4bit",
    "mlx-community/Qwen3.5-72B-4bit",
    "mlx-community/Qwen3.5-72B-Instruct-4bit",
    "mlx-community/Qwen3.5-0.6B-4bit",
    "mlx-community/Qwen3.5-1.5B-4bit",
    "mlx-community/Qwen3.5-7B-4bit",
    "mlx-community/Qwen3.5-14B-4bit",
    "mlx-community/Qwen3.5-8B-8bit",
    "mlx-community/Qwen3.5-30B-A3B-Instruct-4bit",
    "mlx-community/gemma3-4b-it-4bit",
}


def test_checkout_uses_the_repository_catalog() -> None:
    assert default_catalog_path() == REPO / "catalog"


def test_shipped_catalog_loads_with_one_file_per_model() -> None:
    catalog = load_catalog()
    files = sorted(p.stem for p in (REPO / "catalog").glob("*.yaml"))
    assert sorted(catalog.ids) == files
    assert 15 <= len(catalog) <= 20
    families = {e.family for e in catalog}
    assert {"Qwen3", "Qwen3.5", "Gemma 3", "Mistral", "DeepSeek-R1 distill"} <= families
    assert any(f.startswith("Llama 3") for f in families)


def test_shipped_catalog_passes_every_structural_check() -> None:
    for e in load_catalog():
        assert all(check(e) == [] for check in ENTRY_CHECKS.values()), e.id
        for quant in e.sources:
            for check in source_checks(e, quant).values():
                assert check(e, quant) == [], (e.id, quant)


EVIDENCED_FILE = Path(__file__).with_name("evidenced_repos.txt")


def evidenced_repos() -> set[str]:
    """The allow-list: one Hub id a line, ``#`` comments (copied from the evidence file)."""
    lines = EVIDENCED_FILE.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_shipped_repositories_all_have_evidence() -> None:
    catalog = load_catalog()
    repos = {s.hf_repo for e in catalog for s in e.sources.values()}
    assert not repos & UNEVIDENCED
    assert all(r is not None and r.startswith("mlx-community/") for r in repos)
    assert all(e.evidence is not None and e.evidence.sources for e in catalog)


def test_every_shipped_repository_id_is_on_the_evidenced_list() -> None:
    """Each hf_repo and convert_from of catalog/*.yaml, not only those we know to be wrong."""
    allowed = evidenced_repos()
    assert not allowed & UNEVIDENCED, "the evidence file says these have no evidence"
    unlisted = []
    for path in sorted((REPO / "catalog").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for quant, source in data["sources"].items():
            for key in ("hf_repo", "convert_from"):
                value = source.get(key)
                if value is not None and value not in allowed:
                    unlisted.append(f"{path.name}: sources.{quant}.{key} {value}")
    assert unlisted == [], (
        f"ids without evidence; add the evidence to the evidence file and the id to "
        f"{EVIDENCED_FILE.name}, or remove them"
    )


def test_shipped_parsers_follow_the_evidence() -> None:
    catalog = load_catalog()
    for e in catalog:
        caps = e.capabilities
        if e.family == "Qwen3.5":
            assert caps.tool_call_parser == "qwen3_xml", e.id  # XML tool calls
        if e.family == "Gemma 3":
            assert not caps.tool_calling, e.id  # no native tool tokens, no parser
        if e.family.startswith("DeepSeek-R1"):
            assert caps.reasoning_parser == "deepseek_r1", e.id  # no opening <think>


def test_local_path_resolves_against_the_yaml_folder(write_catalog: WriteCatalog) -> None:
    folder = write_catalog({"m.yaml": entry(sources={"int4": {"local_path": "models/tiny"}})})
    loaded = load_catalog(folder).get("qwen3-8b")
    assert loaded.sources["int4"].local_path == (folder / "models" / "tiny").resolve()
    assert loaded.sources["int4"].is_local
    assert loaded.file == folder / "m.yaml"


def test_a_file_may_hold_a_list_of_entries(write_catalog: WriteCatalog) -> None:
    text = yaml.safe_dump([entry(id="a"), entry(id="b")])
    folder = write_catalog({"two.yaml": text})
    assert load_catalog(folder / "two.yaml").ids == ["a", "b"]


def test_get_names_the_known_ids() -> None:
    with pytest.raises(KeyError, match=r"no catalog entry 'qwen3\.5-8b'.*qwen3\.5-9b"):
        load_catalog().get("qwen3.5-8b")


def test_committed_json_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert schema_main(["--check", str(SCHEMA)]) == 0, (
        "run: python -m pytest_mlxstack.catalog.jsonschema"
    )
    assert SCHEMA.read_text(encoding="utf-8") == render_schema()


def test_stale_json_schema_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "schema.json"
    stale.write_text("{}\n")
    assert schema_main(["--check", str(stale)]) == 1
    assert (
        "out of date; run python -m pytest_mlxstack.catalog.jsonschema" in capsys.readouterr().err
    )
    assert schema_main([str(stale)]) == 0
    assert schema_main(["--check", str(stale)]) == 0


def test_json_schema_accepts_the_shipped_files_and_rejects_broken_ones() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    for path in (REPO / "catalog").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), schema)
    broken = entry(sources={"int9": {"hf_repo": "Qwen3-8B-4bit", "disk_size_gb": 1}})
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
    assert errors
    validator = jsonschema.Draft202012Validator(schema)
    for field, name in (("tool_call_parser", "qwen35"), ("reasoning_parser", "qwen3_5")):
        caps = {**entry()["capabilities"], field: name}  # names vllm-mlx does not have
        assert list(validator.iter_errors(entry(capabilities=caps))), field
        assert not list(validator.iter_errors(entry(capabilities={**caps, field: None}))), field


def test_parser_names_are_read_from_vllm_mlx_without_importing_it() -> None:
    pytest.importorskip("vllm_mlx.tool_parsers", reason="vllm-mlx not installed")
    code = (
        "import sys; from pytest_mlxstack.catalog import parser_registry as r; "
        "reg = r(); print(reg.origin); print('vllm_mlx' in sys.modules, "
        "'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert out[0].startswith("the installed vllm-mlx ")
    assert out[1] == "False False"


def test_built_in_parser_list_matches_the_installed_vllm_mlx() -> None:
    """If this fails, vllm-mlx changed its registries: update the fallback lists."""
    tool_parsers = pytest.importorskip("vllm_mlx.tool_parsers", reason="vllm-mlx not installed")
    reasoning = pytest.importorskip("vllm_mlx.reasoning")
    registry = parser_registry()
    assert set(tool_parsers.ToolParserManager.list_registered()) == registry.tool_parsers
    assert set(reasoning.list_parsers()) == registry.reasoning_parsers
    assert registry.tool_parsers == FALLBACK_TOOL_PARSERS
    assert registry.reasoning_parsers == FALLBACK_REASONING_PARSERS


def test_wheel_ships_the_catalog_as_default(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="hatchling builds the wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("pytest_mlxstack-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    shipped = {f"pytest_mlxstack/catalog_data/{p.name}" for p in (REPO / "catalog").glob("*.yaml")}
    assert shipped <= names
    # what the tiers need at run time ships too: the fixture models, templates, expectations
    for variant in ("tiny-chat", "tiny-chat-no-tools", "tiny-chat-bad-tool-syntax"):
        assert f"pytest_mlxstack/fixture_models/{variant}/model.safetensors" in names
        assert f"pytest_mlxstack/fixture_models/{variant}/tokenizer_config.json" in names
    assert "pytest_mlxstack/matrix/templates/matrix.html.j2" in names
    assert "pytest_mlxstack/suites/fixture_expectations.yaml" in names
    assert "pytest_mlxstack/py.typed" in names
    code = (
        "from pytest_mlxstack.catalog import default_catalog_path, load_catalog; "
        "print(default_catalog_path()); print(len(load_catalog()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    ).stdout.splitlines()
    assert out == [str(tmp_path / "site" / "pytest_mlxstack" / "catalog_data"), str(len(shipped))]
    shutil.rmtree(tmp_path / "site")
