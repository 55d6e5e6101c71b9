"""Matrix files: round trip, schema, atomic replacement, clear errors for broken files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from pytest_mlxstack.matrix.expectations import parse_expectations
from pytest_mlxstack.matrix.model import SCHEMA_VERSION, Matrix, MatrixFormatError, load_matrix
from pytest_mlxstack.matrix.schema import matrix_json_schema, schema_text
from pytest_mlxstack.matrix.store import write_matrix, write_matrix_file

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


def test_a_version_1_file_reads_as_the_current_version(build_matrix, tmp_path):
    """Version 2 added an expectation's ``attribution`` (version 3 an attribution value);
    version 1 files are otherwise the same and stay readable (published baselines, older
    nightly artefacts)."""
    expectations = parse_expectations(
        [{"model": "tiny-chat", "capability": "tool_calling", "verdict": "fail", "reason": "r"}]
    )
    data = build_matrix(CELLS, expectations=expectations).to_json()
    data["schema_version"] = 1
    for row in data["rows"]:
        del row["server"], row["server_version"]  # version 4 added them
        for cell in row["cells"]:
            if cell["expectation"] is not None:
                del cell["expectation"]["attribution"]
    (tmp_path / "v1.json").write_text(json.dumps(data))

    matrix = load_matrix(tmp_path / "v1.json")

    assert matrix.schema_version == SCHEMA_VERSION == 4
    assert {row.server for row in matrix.rows} == {"vllm-mlx"}  # all older rows were
    cell = matrix.rows[0].cell("tool_calling", "proxied")
    assert (cell.expectation.status, cell.expectation.attribution) == ("known_failure", None)


def test_a_matrix_written_before_performance_was_measured_still_reads_and_validates(
    build_matrix, tmp_path
):
    """The published matrices/latest.json predates the performance fields: it must still read
    (the figures are None) and still match the published schema."""
    data = json.loads((REPO / "matrices" / "latest.json").read_text())
    for row in data["rows"]:
        for name in ("ttft_s", "decode_tokens_per_s", "prompt_tokens_per_s"):
            row.pop(name, None)
    jsonschema.validate(data, json.loads((REPO / "matrices" / "matrix.schema.json").read_text()))
    (tmp_path / "old.json").write_text(json.dumps(data))

    rows = load_matrix(tmp_path / "old.json").rows

    assert rows
    assert all(row.ttft_s is None and row.decode_tokens_per_s is None for row in rows)
    assert all(row.startup_s is not None for row in rows)


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


# Writes the matrix in argv[1] into the directory argv[2] while the process may not write files
# larger than argv[3] bytes: the OS refuses the write part-way (EFBIG), as on a full disk.
# argv[4] says how: the whole run ("run") or straight over latest.json ("latest").
WRITE_UNDER_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.matrix.store import write_matrix, write_matrix_file

matrix = load_matrix(sys.argv[1])
directory = Path(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    if sys.argv[4] == "run":
        write_matrix(matrix, directory, html="<html>new</html>")
    else:
        write_matrix_file(matrix, directory / "latest.json")
except OSError as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("how", ["run", "latest"])
def test_a_write_failing_part_way_leaves_the_previous_latest_intact(build_matrix, tmp_path, how):
    directory = tmp_path / "matrices"
    good = write_matrix(build_matrix(CELLS), directory)
    before = good.latest_json.read_bytes()
    big = build_matrix(CELLS, run_id="20250102T000000Z-bbbbbb")
    big.rows[0].cells[0].evidence.response = {"content": "long answer " * 4000}
    source = tmp_path / "big.json"
    write_matrix_file(big, source)
    limit = len(before) + 4096  # the previous matrix fits, the new one does not
    assert source.stat().st_size > limit

    result = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_SIZE_LIMIT, source, directory, str(limit), how],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 3, result.stderr
    assert "File too large" in result.stdout
    if how == "run":
        assert result.stdout.startswith(f"could not write the matrix to {directory} (")
    assert good.latest_json.read_bytes() == before
    assert sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")) == [
        "latest.json",
        "runs",
        f"runs/{good.json_path.name}",
    ]


def test_non_finite_numbers_and_secrets_never_reach_the_file(build_matrix, tmp_path):
    matrix = build_matrix(CELLS)
    matrix.rows[0].cells[0].evidence.duration_s = float("nan")
    matrix.rows[0].cells[0].reason = "sent Authorization: Bearer abcdef123456"
    written = write_matrix(matrix, tmp_path)
    text = written.latest_json.read_text()
    assert "abcdef123456" not in text
    assert load_matrix(written.latest_json).rows[0].cells[0].evidence.duration_s is None


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


def test_a_repeated_row_is_refused(build_matrix, tmp_path):
    data = build_matrix(CELLS).to_json()
    data["rows"].append(data["rows"][0])
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(MatrixFormatError, match=r"rows\.2 repeats the row tiny-chat / bf16"):
        load_matrix(path)


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
