"""Model output shown outside the HTML page: inert in Markdown, no escape sequence on a terminal.

A matrix whose reasons (quoting model output) and names hold Markdown links, images, HTML and
terminal escape sequences goes through ``mlxstack matrix diff`` (plain and ``--markdown``) and
through pytest's terminal summary and failure messages.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.store import write_matrix_file
from pytest_mlxstack.text import markdown, terminal

NEW = ("20250102T000000Z-bbbbbb", "2025-01-02T00:00:00Z")

# What a model could answer: each would act on the reader if printed raw.
HOSTILE_MARKDOWN = [
    "![x](http://evil.example/pixel.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "see https://evil.example/a and www.evil.example",
    "mail me@evil.example :rocket: $x^2$ *bold* __u__ ~~s~~ `code`",
    "a | b | c",
    "&lt;not an entity&gt; &#60;",
    "[ref]: http://evil.example",
    "<https://evil.example>",
]
HOSTILE_TERMINAL = [
    "\x1b]0;owned title\x07",  # OSC: window title
    "\x1b]8;;http://evil.example\x1b\\click me\x1b]8;;\x1b\\",  # OSC 8: a hidden link target
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: write the clipboard
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "\x1b[31mred\x1b[0m",
    "\x9b31m8-bit CSI",
    "\x1bP1;2|payload\x1b\\",  # DCS
    "fake ok\rREAL",  # a carriage return overwrites what was printed
    "back\x08\x08\x08\x08",
    "\u202eevil\u202c",  # a right-to-left override
    "\x1b]0;unterminated title",
]
UNESCAPED_URL = re.compile(r"(?<!\\)://|www(?!\\)\.")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _render(text: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return str(markdown_it.MarkdownIt("commonmark").enable("table").render(text))


@pytest.mark.parametrize("text", HOSTILE_TERMINAL)
def test_terminal_text_keeps_no_control_character(text: str) -> None:
    shown = terminal.plain(text)
    assert CONTROL.search(shown) is None, repr(shown)
    assert "owned title" not in shown  # a sequence goes whole, with its parameters
    assert "evil.example" not in shown
    assert "ZXZpbA" not in shown


def test_terminal_text_keeps_the_visible_text() -> None:
    assert terminal.plain("\x1b[31mred\x1b[0m and\tblue\n") == "red and\tblue\n"
    assert terminal.one_line("\x1b]8;;http://x\x07link\x1b]8;;\x07  two\nlines") == (
        "link two lines"
    )


@pytest.mark.parametrize("text", HOSTILE_MARKDOWN)
def test_markdown_text_renders_as_the_text_itself(text: str) -> None:
    rendered = _render(f"| col |\n|---|\n| {markdown.inline(text)} |\n")
    assert "<a " not in rendered
    assert "<img" not in rendered
    assert "<script" not in rendered
    assert "<strong>" not in rendered
    assert "<em>" not in rendered
    assert "<code>" not in rendered
    cell = re.search(r"<td>(.*)</td>", rendered)
    assert cell is not None, rendered
    assert html.unescape(cell.group(1)) == text


def test_bare_urls_are_no_autolinks_in_the_markdown_source() -> None:
    """GitHub's renderer links bare ``https://`` and ``www.``; the escaped text has neither."""
    escaped = markdown.inline("go to https://evil.example or www.evil.example now")
    assert UNESCAPED_URL.search(escaped) is None, escaped


# -- through the CLI -------------------------------------------------------------------------


@pytest.fixture
def hostile_matrices(build_matrix, tmp_path: Path) -> tuple[Path, Path]:
    """BASE passes, NEW fails with reasons quoting hostile model output; a hostile model name."""
    cells = [
        ("qwen", "4bit", "inference", "direct"),
        ("qwen", "4bit", "tool_calling", "direct"),
        ("\x1b]0;owned title\x07[evil](http://evil.example)", "4bit", "inference", "direct"),
    ]
    base = build_matrix([(*cell, "pass") for cell in cells])
    new = build_matrix([(*cell, "fail") for cell in cells], run_id=NEW[0], created_at=NEW[1])
    reasons = {"inference": " ".join(HOSTILE_MARKDOWN), "tool_calling": "".join(HOSTILE_TERMINAL)}
    for row in new.rows:
        for cell in row.cells:
            cell.reason = reasons[cell.capability] if row.model == "qwen" else "fine"
    write_matrix_file(base, tmp_path / "base.json")
    write_matrix_file(new, tmp_path / "new.json")
    return tmp_path / "base.json", tmp_path / "new.json"


def _diff(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_mlxstack", "matrix", "diff", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_plain_diff_prints_no_escape_sequence(hostile_matrices, tmp_path: Path) -> None:
    result = _diff("base.json", "new.json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert CONTROL.search(result.stdout) is None, repr(result.stdout)
    assert "owned title" not in result.stdout
    assert "click me" in result.stdout  # the text of a hidden link stays, its target goes
    assert result.stdout.count("\n") == 4  # headline and three changes: one line each


def test_markdown_diff_has_no_live_link_image_or_html(hostile_matrices, tmp_path: Path) -> None:
    result = _diff("base.json", "new.json", "--markdown", "summary.md", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    printed = _diff("base.json", "new.json", "--markdown", "-", cwd=tmp_path).stdout
    source = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert printed == source
    assert CONTROL.search(source) is None
    assert UNESCAPED_URL.search(source) is None
    assert "](" not in source
    rendered = _render(source)
    assert "<a " not in rendered
    assert "<img" not in rendered
    assert "<script" not in rendered
    assert "![x](http://evil.example/pixel.png)" in html.unescape(rendered)  # shown as text
    rows = [line for line in source.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == 7 for line in rows[2:]), rows  # no cell split by a pipe


# -- through pytest --------------------------------------------------------------------------

HOSTILE_TESTS = f"""
import os
from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Route, Verdict

def test_chat(mlx_matrix):
    result = ProbeResult(
        "inference", Verdict(os.environ.get("VERDICT", "pass")),
        reason="model said: " + {"".join(HOSTILE_TERMINAL)!r},
        attribution=Attribution.MODEL,
    )
    mlx_matrix.record(result, model="tiny-chat", quant="bf16", route=Route.DIRECT)
    mlx_matrix.check(result)
"""


def test_pytest_output_prints_no_escape_sequence(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXSTACK_MATRIX_DIR", str(pytester.path / "matrices"))
    pytester.makepyfile(test_hostile=HOSTILE_TESTS)
    monkeypatch.setenv("VERDICT", "pass")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setenv("VERDICT", "fail")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "REGRESSION tiny-chat [bf16] inference (direct): pass -> fail" in output
    assert "model said: " in output
    assert CONTROL.search(output) is None, repr(output)
    assert "owned title" not in output


@pytest.mark.parametrize("where", ["an unknown key", "a repeated row"])
def test_a_broken_matrix_quoting_escapes_is_told_as_plain_text(
    build_matrix, tmp_path: Path, where: str
) -> None:
    """Field names and row keys of a broken file reach the one sentence: JSON can spell any
    control character (``\\u001b``), so they are made plain before they are printed."""
    matrix = build_matrix([("qwen", "4bit", "inference", "direct", "pass")])
    write_matrix_file(matrix, tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    if where == "an unknown key":
        data["rows"][0]["\x1b]0;owned title\x07\x1b[2Jx"] = 1
    else:
        data["rows"][0]["model"] = "\x1b]0;owned title\x07\x1b[2Jqwen"
        data["rows"].append(data["rows"][0])
    (tmp_path / "m.json").write_text(json.dumps(data), encoding="utf-8")
    result = _diff("m.json", "m.json", cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert CONTROL.search(result.stderr) is None, repr(result.stderr)
    assert "owned title" not in result.stderr
    assert ("field rows.0.x:" if where == "an unknown key" else "repeats the row qwen") in (
        result.stderr
    )
