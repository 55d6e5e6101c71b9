"""Earlier runs for the page's trends: ordered by time, the newest kept, broken files named."""

from __future__ import annotations

from pytest_mlxstack.matrix.history import HISTORY_RUNS, cell_trends, recent_history
from pytest_mlxstack.matrix.store import write_matrix_file


def test_the_plugin_page_reads_the_newest_runs_and_names_a_broken_file(build_matrix, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for hour in range(HISTORY_RUNS + 2):
        verdict = "fail" if hour % 2 else "pass"
        matrix = build_matrix(
            [("qwen", "4bit", "inference", "direct", verdict)],
            run_id=f"20250101T{hour:02d}0000Z-aaaaaa",
            created_at=f"2025-01-01T{hour:02d}:00:00Z",
        )
        write_matrix_file(matrix, runs / f"{matrix.runs[0].run_id}.json")
    (runs / "20250101T230000Z-broken.json").write_text('{"schema_version": 2, "runs": [')

    history, problems = recent_history(runs)

    assert len(history) == HISTORY_RUNS - 2  # the newest files, less the broken one
    assert [m.runs[0].created_at[11:13] for m in history] == [
        "04",
        "05",
        "06",
        "07",
        "08",
        "09",
        "10",
        "11",
    ]
    (problem,) = problems
    assert "20250101T230000Z-broken.json" in problem
    assert "not valid JSON" in problem
    assert recent_history(tmp_path / "absent") == ([], [])


def test_a_cell_missing_from_an_earlier_run_shows_as_not_recorded(build_matrix):
    old = build_matrix([("qwen", "4bit", "tool_calling", "direct", "pass")], run_id="a")
    new = build_matrix(
        [("qwen", "4bit", "inference", "direct", "fail")],
        run_id="b",
        created_at="2025-01-02T00:00:00Z",
    )
    other_machine = build_matrix(
        [("qwen", "4bit", "inference", "direct", "pass")], run_id="c", profile="elsewhere"
    )

    trends = cell_trends(new, [old, other_machine, new])

    # The other machine's run is not this row's history; the matrix itself counts once; the
    # earlier run on this machine did not record the cell.
    assert trends == {
        ("qwen", "4bit", "vllm-mlx", "m2-max-64", "inference", "direct"): [None, "fail"]
    }
