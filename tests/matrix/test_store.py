"""Matrix files: round trip, schema, atomic replacement, clear errors for broken files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pytest_mlxstack.matrix.model import Matrix, MatrixFormatError, load_matrix
from pytest_mlxstack.matrix.schema import matrix_json_schema, schema_text
from pytest_mlxstack.matrix.store import MatrixWriteError, write_matrix

REPO = Path(__file__).resolve().parents[2]
CELLS = [
    ("tiny-chat", "bf16", "inference", "direct", "pass"),
    ("tiny-chat", "bf16", "tool_calling", "proxied", "fail"),
    ("tiny-chat-no-think", "bf16", "thinking", "direct", "n/a"),
]


def test_written_matrix_reads_back_equal_and_matches_the_published_schema(build_matrix, tmp_path):
    matrix = build_matrix(CELLS)
    written = write_matrix(matrix, tmp_path, html="<html></html>")

    assert written.json_path.parent == tmp_path / "runs"
    assert written.json_path.name == f"{matrix.runs[0].run_id}.json"
    assert written.latest_json.read_bytes() == written.json_path.read_bytes()
    assert written.latest_html is not None
    assert written.latest_html.read_text() == "<html></html>"
    assert load_matrix(written.latest_json) == matrix.sorted()

    published = json.loads((REPO / "matrices" / "matrix.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(published)
    jsonschema.validate(json.loads(written.latest_json.read_text()), published)


def test_published_schema_is_current():
    committed = (REPO / "matrices" / "matrix.schema.json").read_text()
    assert committed == schema_text(), (
        "matrices/matrix.schema.json is stale: run "
        "'mlxstack matrix schema -o matrices/matrix.schema.json' and bump SCHEMA_VERSION "
        "if the shape changed"
    )


def test_schema_rejects_a_cell_without_a_verdict(build_matrix):
    data = build_matrix(CELLS).to_json()
    del data["rows"][0]["cells"][0]["verdict"]
    with pytest.raises(jsonschema.ValidationError, match="verdict"):
        jsonschema.validate(data, matrix_json_schema())


def test_two_runs_in_the_same_second_keep_both_files(build_matrix, tmp_path):
    first = write_matrix(build_matrix(CELLS), tmp_path)
    second = write_matrix(build_matrix(CELLS[:1]), tmp_path)

    assert first.json_path != second.json_path
    assert len(load_matrix(first.json_path).iter_cells()) == 3
    assert len(load_matrix(tmp_path / "latest.json").iter_cells()) == 1


def test_a_failed_write_leaves_the_previous_latest_intact(build_matrix, tmp_path):
    good = write_matrix(build_matrix(CELLS), tmp_path)
    before = good.latest_json.read_bytes()
    broken = build_matrix(CELLS, run_id="20250102T000000Z-bbbbbb")
    # NaN is not JSON: the streaming writer fails after part of the file is out.
    broken.rows[-1].cells[-1].evidence.duration_s = float("nan")

    with pytest.raises(MatrixWriteError, match=str(tmp_path)):
        write_matrix(broken, tmp_path, html="<html>new</html>")

    assert good.latest_json.read_bytes() == before
    assert good.latest_html is None
    assert not (tmp_path / "latest.html").exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        good.json_path.name,
        "latest.json",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema_version": 1, "runs": [', "not valid JSON .*truncated"),
        ("[]", "must hold a JSON object"),
        ('{"schema_version": 7, "runs": [], "rows": []}', "schema_version is 7.*upgrade"),
        ('{"schema_version": 1, "runs": [], "rows": []}', "field runs: .*at least 1"),
    ],
)
def test_broken_files_give_one_sentence_naming_the_file(tmp_path, content, message):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(MatrixFormatError, match=message) as info:
        load_matrix(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_cell_with_an_unknown_verdict_names_the_field(build_matrix, tmp_path):
    data = build_matrix(CELLS).to_json()
    data["rows"][0]["cells"][0]["verdict"] = "maybe"
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(MatrixFormatError, match=r"rows\.0\.cells\.0\.verdict"):
        load_matrix(path)


def test_missing_file_and_directory_are_named(tmp_path):
    with pytest.raises(MatrixFormatError, match="no such matrix file"):
        load_matrix(tmp_path / "absent.json")
    with pytest.raises(MatrixFormatError, match="is a directory"):
        load_matrix(tmp_path)


def test_matrix_counts_and_columns_follow_the_capability_order(build_matrix):
    matrix: Matrix = build_matrix([*CELLS, ("z", "4bit", "a_custom_probe", "direct", "skip")])
    assert matrix.verdict_counts() == {"pass": 1, "fail": 1, "skip": 1, "n/a": 1}
    assert matrix.capabilities() == [
        ("inference", "direct"),
        ("tool_calling", "proxied"),
        ("thinking", "direct"),
        ("a_custom_probe", "direct"),
    ]
