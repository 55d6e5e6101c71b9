"""``mlxstack matrix`` as a user runs it: a real subprocess, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.matrix.store import write_matrix_file

NEW = ("20250102T000000Z-bbbbbb", "2025-01-02T00:00:00Z")


def mlxstack(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_mlxstack", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def base_and_new(build_matrix, tmp_path):
    base = build_matrix(
        [
            ("qwen", "4bit", "inference", "direct", "pass"),
            ("qwen", "4bit", "tool_calling", "direct", "fail"),
        ]
    )
    new = build_matrix(
        [
            ("qwen", "4bit", "inference", "direct", "fail"),
            ("qwen", "4bit", "tool_calling", "direct", "pass"),
        ],
        run_id=NEW[0],
        created_at=NEW[1],
    )
    write_matrix_file(base, tmp_path / "base.json")
    write_matrix_file(new, tmp_path / "new.json")
    return tmp_path / "base.json", tmp_path / "new.json"


def test_diff_exits_1_on_a_regression_and_writes_markdown(base_and_new, tmp_path):
    base, new = base_and_new
    result = mlxstack("matrix", "diff", base, new, "--markdown", "summary.md", cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == (
        "1 regression, 1 fix, 0 changed, 0 new, 0 removed, 0 unchanged"
    )
    markdown = (tmp_path / "summary.md").read_text()
    assert "### Regressions (pass → fail or missing)" in markdown
    assert "| qwen | 4bit | m2-max-64 | inference | direct | pass | fail |" in markdown
    assert "### Fixes (fail → pass)" in markdown

    fixes_only = mlxstack("matrix", "diff", new, new, "--markdown", "-", cwd=tmp_path)
    assert fixes_only.returncode == 0
    assert fixes_only.stdout.startswith("## Compatibility matrix diff")


def test_diff_exits_1_when_a_passing_cell_is_missing(build_matrix, tmp_path):
    """A model whose server no longer starts, a test no longer run: its passes vanish."""
    both = [
        ("qwen", "4bit", "inference", "direct", "pass"),
        ("llama", "4bit", "inference", "direct", "pass"),
        ("llama", "4bit", "thinking", "direct", "fail"),
    ]
    write_matrix_file(build_matrix(both), tmp_path / "base.json")
    only_qwen = build_matrix(both[:1], run_id=NEW[0], created_at=NEW[1])
    write_matrix_file(only_qwen, tmp_path / "new.json")

    result = mlxstack("matrix", "diff", "base.json", "new.json", "--markdown", "s.md", cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1 regression, 0 fixes, 0 changed, 0 new, 1 removed, 1 unchanged"
    assert (
        "  regression llama [4bit] inference (direct) on m2-max-64: pass -> missing (missing: "
        in result.stdout
    )
    assert "removed    llama [4bit] thinking (direct) on m2-max-64: fail -> -" in result.stdout
    assert "| llama | 4bit | m2-max-64 | inference | direct | pass | missing |" in (
        (tmp_path / "s.md").read_text()
    )


def test_diff_of_matrices_without_a_common_cell_says_so_and_exits_2(build_matrix, tmp_path):
    """The same models, but NEW was labelled with another machine profile: nothing matches,
    which must not read as "0 regressions"."""
    cells = [("qwen", "4bit", "inference", "direct", "pass")]
    write_matrix_file(build_matrix(cells), tmp_path / "base.json")
    other = build_matrix(cells, run_id=NEW[0], created_at=NEW[1], profile="Linux-x86_64 cpu")
    write_matrix_file(other, tmp_path / "new.json")

    result = mlxstack("matrix", "diff", "base.json", "new.json", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "mlxstack: base.json (profiles: m2-max-64) and new.json (profiles: Linux-x86_64 cpu) "
        "share no (model, quant, profile, capability, route) cell, so there is nothing to "
        "compare; run the new matrix with the base's profile (--mlx-machine-profile) or "
        "compare matrices of the same models"
    ]


def test_merge_writes_one_matrix_and_reports_conflicts(build_matrix, tmp_path):
    m2 = build_matrix([("qwen", "4bit", "inference", "direct", "pass")])
    m2_again = build_matrix(
        [("qwen", "4bit", "inference", "direct", "fail")], run_id=NEW[0], created_at=NEW[1]
    )
    m4 = build_matrix([("qwen", "4bit", "inference", "direct", "pass")], profile="m4-pro-48")
    for name, matrix in (("a.json", m2), ("b.json", m2_again), ("c.json", m4)):
        write_matrix_file(matrix, tmp_path / name)

    result = mlxstack(
        "matrix", "merge", "a.json", "b.json", "c.json", "-o", "all.json", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert "merged 3 matrices (2 runs) into all.json: 2 rows, 2 cells, 1 conflicts" in result.stdout
    assert "conflict qwen [4bit] on m2-max-64, inference (direct): kept fail" in result.stdout
    merged = load_matrix(tmp_path / "all.json")
    assert [row.profile for row in merged.rows] == ["m2-max-64", "m4-pro-48"]


def test_secrets_in_a_hand_made_input_file_are_redacted_on_output(build_matrix, tmp_path):
    matrix = build_matrix([("qwen", "4bit", "inference", "direct", "fail")])
    matrix.rows[0].cells[0].reason = "proxy said: Authorization: Bearer sk-abcdef123456 refused"
    (tmp_path / "raw.json").write_text(json.dumps(matrix.to_json()))  # not through the writer

    assert mlxstack("matrix", "merge", "raw.json", "-o", "out.json", cwd=tmp_path).returncode == 0
    assert mlxstack("matrix", "render", "raw.json", cwd=tmp_path).returncode == 0
    for output in ("out.json", "raw.html"):
        text = (tmp_path / output).read_text()
        assert "abcdef123456" not in text
        assert "[REDACTED]" in text


def test_render_writes_a_page_next_to_the_json(base_and_new, tmp_path):
    base, new = base_and_new
    result = mlxstack("matrix", "render", new, "--baseline", base, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    page = (tmp_path / "new.html").read_text()
    parser = HTMLParser()
    parser.feed(page)  # well-formed enough to parse
    assert "badge regression" in page
    assert "<style>" in page

    out = mlxstack("matrix", "render", new, "-o", tmp_path / "pages" / "m.html", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pages" / "m.html").is_file()


class TrendParser(HTMLParser):
    """The classes of the squares of every trend, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.trends: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        if tag == "svg" and classes == "trend":
            self.trends.append([])
        elif tag == "rect" and self.trends and classes.split()[0] in TREND_CLASSES:
            self.trends[-1].append(classes)


TREND_CLASSES = ("pass", "fail", "skip", "na", "none")


def test_render_with_history_shows_each_cells_verdicts_over_the_last_runs(build_matrix, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    earlier = [
        ("20250101T000000Z-aaaaa1", "pass"),
        ("20250101T010000Z-aaaaa2", "fail"),
        ("20250101T020000Z-aaaaa3", None),  # that run did not record the cell
    ]
    for number, (run_id, verdict) in enumerate(earlier):
        cells = [("qwen", "4bit", "tool_calling", "direct", "pass")]
        if verdict is not None:
            cells.append(("qwen", "4bit", "inference", "direct", verdict))
        matrix = build_matrix(cells, run_id=run_id, created_at=f"2025-01-01T0{number}:00:00Z")
        write_matrix_file(matrix, runs / f"{run_id}.json")
    new = build_matrix(
        [
            ("qwen", "4bit", "inference", "direct", "fail"),
            ("qwen", "4bit", "tool_calling", "direct", "pass"),
        ],
        run_id=NEW[0],
        created_at=NEW[1],
    )
    write_matrix_file(new, tmp_path / "new.json")
    write_matrix_file(new, runs / f"{NEW[0]}.json")  # its own copy is not counted twice

    result = mlxstack("matrix", "render", "new.json", "--history", "runs", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    parser = TrendParser()
    parser.feed((tmp_path / "new.html").read_text())
    inference, tool_calling = parser.trends
    assert inference == ["pass", "fail", "none", "fail now"]
    assert tool_calling == ["pass", "pass", "pass", "pass now"]

    missing = mlxstack("matrix", "render", "new.json", "--history", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "mlxstack: nowhere: the history directory does not exist; pass a folder of matrix "
        "JSON files such as matrices/runs"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["matrix", "render", "absent.json"], "mlxstack: absent.json: no such matrix file"),
        (["matrix", "diff", "truncated.json", "truncated.json"], "not valid JSON"),
        (["matrix", "merge", "truncated.json", "-o", "x.json"], "truncated"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "truncated.json").write_text('{"schema_version": 1, "runs": [{"run_')
    result = mlxstack(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_schema_command_prints_the_published_schema(tmp_path):
    result = mlxstack("matrix", "schema", cwd=tmp_path)
    repo = Path(__file__).resolve().parents[2]
    assert json.loads(result.stdout) == json.loads(
        (repo / "matrices" / "matrix.schema.json").read_text()
    )
