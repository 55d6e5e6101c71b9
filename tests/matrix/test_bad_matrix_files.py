"""``mlxstack matrix diff`` of files that are not matrices: one sentence each, exit 2, promptly.

Each case is a real file (or pipe, or link) handed to the real CLI in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_mlxstack.matrix.model import MatrixFormatError, load_matrix


def _write(text: str | bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    return make


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # nobody ever writes: a plain read would wait forever


def _self_link(path: Path) -> None:
    path.symlink_to(path.name)


def _dangling_link(path: Path) -> None:
    path.symlink_to("gone.json")


LONG_LINE = '{"note": "' + "x" * 5000 + '", oops}'

# name -> (how to make the file, phrases the one sentence holds)
CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "json-object-not-a-matrix": (
        _write('{"name": "not a matrix", "items": [1, 2]}'),
        ("is JSON but not a matrix", "none of 'schema_version', 'runs' and 'rows'"),
    ),
    "json-list": (_write("[1, 2, 3]"), ("must hold a JSON object",)),
    "syntax-error-quotes-one-line": (
        _write('{\n  "schema_version": 2,\n  "runs": [,]\n}\n'),
        ("not valid JSON at line 3, column 12", "in '\"runs\": [,]';"),
    ),
    "syntax-error-in-a-long-line": (_write(LONG_LINE), ("not valid JSON at line 1", "oops}'")),
    "deep-nesting": (_write("[" * 100_000), ("nests JSON arrays or objects too deeply",)),
    "named-pipe": (_fifo, ("is a named pipe, not a regular file",)),
    "symlink-to-itself": (_self_link, ("is a symbolic link loop",)),
    "dangling-symlink": (
        _dangling_link,
        ("link to gone.json, which does not exist",),
    ),
    "not-utf8": (_write(b"\xff\xfe{}"), ("is not UTF-8 text (byte 0xff at offset 0)",)),
    "empty": (_write(""), ("not valid JSON at line 1, column 1",)),
    "escape-sequences-in-a-broken-line": (
        _write('{"x": 1, "\x1b]0;pwned\x07\x1b[2J": }'),
        ("not valid JSON", 'in \'{"x": 1, "": }\''),  # the sequences go whole
    ),
}


def run_diff(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_mlxstack", "matrix", "diff", path.name, path.name],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=60,  # a hang (the named pipe) fails the test instead of blocking the run
        check=False,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_that_is_not_a_matrix_is_one_sentence_and_exit_2(tmp_path: Path, case: str) -> None:
    make, phrases = CASES[case]
    path = tmp_path / "m.json"
    make(path)
    result = run_diff(path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlxstack: m.json: ")
    assert "\x1b" not in lines[0]
    assert "\x07" not in lines[0]
    assert "Traceback" not in result.stderr
    assert len(lines[0]) < 400, lines[0]
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def test_the_library_says_the_same(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    _fifo(path)
    with pytest.raises(MatrixFormatError, match="is a named pipe"):
        load_matrix(path)
