"""Merging matrices of several machines and runs; diffing two matrices."""

from __future__ import annotations

import json

from pytest_mlxstack.matrix.diff import diff_matrices, no_shared_cells
from pytest_mlxstack.matrix.merge import merge_matrices
from pytest_mlxstack.matrix.model import load_matrix

OLD = ("20250101T000000Z-aaaaaa", "2025-01-01T00:00:00Z")
NEW = ("20250102T000000Z-bbbbbb", "2025-01-02T00:00:00Z")


def test_rows_from_two_machines_stay_apart(build_matrix):
    m2 = build_matrix([("qwen", "4bit", "inference", "direct", "pass")], profile="m2-max-64")
    m4 = build_matrix(
        [("qwen", "4bit", "inference", "direct", "fail")],
        run_id=NEW[0],
        created_at=NEW[1],
        profile="m4-pro-48",
    )
    result = merge_matrices([m2, m4])

    assert [row.key for row in result.matrix.rows] == [
        ("qwen", "4bit", "vllm-mlx", "m2-max-64"),
        ("qwen", "4bit", "vllm-mlx", "m4-pro-48"),
    ]
    assert [run.run_id for run in result.matrix.runs] == [OLD[0], NEW[0]]
    assert result.conflicts == []


def test_the_newer_run_wins_a_conflict_whatever_the_input_order(build_matrix):
    older = build_matrix(
        [
            ("qwen", "4bit", "inference", "direct", "pass"),
            ("qwen", "4bit", "tool_calling", "direct", "pass"),
            ("qwen", "4bit", "thinking", "direct", "pass"),
        ],
        rows=[{"model": "qwen", "quant": "4bit", "repo": "org/qwen", "startup_s": 4.0}],
    )
    newer = build_matrix(
        [
            ("qwen", "4bit", "tool_calling", "direct", "fail"),
            ("qwen", "4bit", "thinking", "direct", "pass"),
        ],
        run_id=NEW[0],
        created_at=NEW[1],
        rows=[{"model": "qwen", "quant": "4bit", "repo": "org/qwen-v2"}],
    )

    forward = merge_matrices([older, newer])
    backward = merge_matrices([newer, older])

    assert forward.matrix == backward.matrix
    row = forward.matrix.rows[0]
    assert row.cell("tool_calling", "direct").verdict.value == "fail"
    assert row.cell("tool_calling", "direct").run_id == NEW[0]
    assert row.cell("inference", "direct").run_id == OLD[0]  # only the older run had it
    assert row.repo == "org/qwen-v2"
    assert row.startup_s == 4.0  # the newer run did not measure it
    assert [(c.field, c.kept, c.dropped, c.kept_run) for c in forward.conflicts] == [
        ("repo", "org/qwen-v2", "org/qwen", NEW[0]),
        ("tool_calling (direct)", "fail", "pass", NEW[0]),
    ]
    assert forward.duplicates == 1  # thinking: pass in both, not a conflict
    assert forward.matrix.conflicts == forward.conflicts  # kept for readers of the file


def test_merging_a_merged_matrix_again_changes_nothing(build_matrix):
    a = build_matrix([("qwen", "4bit", "inference", "direct", "pass")])
    b = build_matrix(
        [("qwen", "4bit", "inference", "direct", "fail")], run_id=NEW[0], created_at=NEW[1]
    )
    once = merge_matrices([a, b]).matrix
    assert merge_matrices([once, b]).matrix == once


def test_diff_classifies_every_change(build_matrix):
    base = build_matrix(
        [
            ("qwen", "4bit", "inference", "direct", "pass"),
            ("qwen", "4bit", "tool_calling", "direct", "fail"),
            ("qwen", "4bit", "thinking", "direct", "pass"),
            ("qwen", "4bit", "streaming", "direct", "pass"),
            ("qwen", "4bit", "multi_turn", "direct", "pass"),
            ("qwen", "4bit", "errors", "proxied", "fail"),
        ]
    )
    new = build_matrix(
        [
            ("qwen", "4bit", "inference", "direct", "fail"),
            ("qwen", "4bit", "tool_calling", "direct", "pass"),
            ("qwen", "4bit", "streaming", "direct", "skip"),
            ("qwen", "4bit", "multi_turn", "direct", "pass"),
            ("qwen", "4bit", "inference", "proxied", "pass"),
        ],
        run_id=NEW[0],
        created_at=NEW[1],
    )
    diff = diff_matrices(base, new)

    assert {(c.capability, c.route): c.kind for c in diff.changes} == {
        ("inference", "direct"): "regression",
        ("tool_calling", "direct"): "fix",
        ("streaming", "direct"): "changed",
        ("thinking", "direct"): "regression",  # a pass that vanished is not just "removed"
        ("errors", "proxied"): "removed",  # a failure that vanished is
        ("inference", "proxied"): "new",
    }
    assert diff.unchanged == 1
    assert diff.shared == 4
    assert diff.has_regressions
    assert diff.regressions[0].attribution == "parser"
    gone = diff.by_key()[("qwen", "4bit", "vllm-mlx", "m2-max-64", "thinking", "direct")]
    assert (gone.before, gone.after, gone.attribution) == ("pass", None, None)
    assert "qwen [4bit] thinking (direct) on m2-max-64: pass -> missing (missing: " in (
        diff.to_text()
    )
    assert "| thinking | direct | pass | missing |" in diff.to_markdown()
    assert not diff_matrices(base, base).has_regressions


def test_matrices_without_a_common_cell_are_named_with_their_profiles(build_matrix):
    base = build_matrix([("qwen", "4bit", "inference", "direct", "pass")])
    relabelled = build_matrix(
        [("qwen", "4bit", "inference", "direct", "pass")],
        run_id=NEW[0],
        created_at=NEW[1],
        profile="Linux-x86_64 cpu 24GiB",
    )
    assert no_shared_cells(base, base, base_name="a.json", new_name="b.json") is None
    message = no_shared_cells(base, relabelled, base_name="a.json", new_name="b.json")
    assert message == (
        "a.json (profiles: m2-max-64) and b.json (profiles: Linux-x86_64 cpu 24GiB) share no "
        "(model, quant, profile, capability, route) cell, so there is nothing to compare; run "
        "the new matrix with the base's profile (--mlx-machine-profile) or compare matrices of "
        "the same models"
    )


def test_markdown_is_a_table_with_untrusted_text_made_inert(build_matrix):
    base = build_matrix([("qwen", "4bit", "inference", "direct", "pass")])
    new = build_matrix(
        [("qwen", "4bit", "inference", "direct", "fail")], run_id=NEW[0], created_at=NEW[1]
    )
    new.rows[0].cells[0].reason = "content was <script>x</script> | and\nmore"
    markdown = diff_matrices(base, new).to_markdown(base="base.json", new="new.json")

    assert "### Regressions (pass → fail or missing)" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| qwen")]
    assert table == [
        "| qwen | 4bit | m2-max-64 | inference | direct | pass | fail | "
        "parser\\: content was \\<script\\>x\\</script\\> \\| and more |"
    ]
    assert "<script>" not in markdown


def test_a_version_3_matrix_merges_and_diffs_with_rows_of_another_server(build_matrix, tmp_path):
    """Version 3 rows (all vllm-mlx) and version 4 rows of mlx-lm for the same model on the same
    machine stay two rows in a merge, and a diff compares only cells of the same server."""
    old = build_matrix([("qwen", "4bit", "stop", "direct", "fail")], profile="m2").to_json()
    old["schema_version"] = 3
    for row in old["rows"]:
        del row["server"], row["server_version"]
    (tmp_path / "v3.json").write_text(json.dumps(old))
    v3 = load_matrix(tmp_path / "v3.json")
    other = build_matrix([("qwen", "4bit", "stop", "direct", "pass")], profile="m2")
    mlx_lm = other.model_copy(
        update={"rows": [r.model_copy(update={"server": "mlx-lm"}) for r in other.rows]}
    )

    merged = merge_matrices([v3, mlx_lm]).matrix

    assert sorted(row.key for row in merged.rows) == [
        ("qwen", "4bit", "mlx-lm", "m2"),
        ("qwen", "4bit", "vllm-mlx", "m2"),
    ]
    assert merge_matrices([v3, mlx_lm]).conflicts == []
    across = diff_matrices(v3, mlx_lm)
    assert across.shared == 0  # the same model on two servers is not a change
    same = diff_matrices(v3, merged)
    assert same.shared == 1  # the vllm-mlx cell, unchanged; mlx-lm's is new beside it
    assert [(c.kind, c.server) for c in same.changes] == [("new", "mlx-lm")]
