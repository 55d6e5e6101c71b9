"""Malformed catalogs, each through ``load_catalog`` and a real ``pytest --mlx-catalog``: one
sentence naming the path and the fix, a usage error, no traceback, and no hang.

The pytest runs are subprocesses with a timeout, so a catalog that hangs the reader (a named
pipe) fails its test instead of blocking the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from catalog_helpers import dump, entry

from pytest_mlxstack.catalog import CatalogError, load_catalog


@dataclass(frozen=True)
class Malformed:
    """How to build the broken catalog under a folder, and what its one sentence says."""

    build: Callable[[Path], Path]  # makes the catalog under the given folder, returns its path
    phrases: tuple[str, ...]


def _folder_with(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        folder = root / "catalog"
        folder.mkdir()
        (folder / "good.yaml").write_text(dump(entry(id="good-8b")), encoding="utf-8")
        target = folder / name
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")
        return folder

    return build


def _pipe_in_folder(root: Path) -> Path:
    folder = root / "catalog"
    folder.mkdir()
    (folder / "good.yaml").write_text(dump(entry()), encoding="utf-8")
    os.mkfifo(folder / "pipe.yaml")  # nobody writes: a plain read waits forever
    return folder


def _folder_named_like_a_file(root: Path) -> Path:
    folder = root / "catalog"
    (folder / "sub.yaml").mkdir(parents=True)
    (folder / "good.yaml").write_text(dump(entry()), encoding="utf-8")
    return folder


def _link_to_itself(root: Path) -> Path:
    link = root / "catalog.yaml"
    link.symlink_to("catalog.yaml")
    return link


def _dangling_link(root: Path) -> Path:
    link = root / "catalog"
    link.symlink_to("moved-away")
    return link


def _empty_folder(root: Path) -> Path:
    folder = root / "catalog"
    folder.mkdir()
    (folder / "README.md").write_text("no entries\n", encoding="utf-8")
    return folder


def _laughs() -> str:
    """Nine levels of ten aliases each: a billion values from a 300-byte file."""
    lines = ["id: x", "l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


ENTRY = dump(entry())
CASES: dict[str, Malformed] = {
    "named-pipe": Malformed(
        _pipe_in_folder, ("pipe.yaml: is a named pipe, not a regular file", "remove it")
    ),
    "folder-named-yaml": Malformed(
        _folder_named_like_a_file, ("sub.yaml: is a directory, not a file",)
    ),
    "100000-nested-brackets": Malformed(
        _folder_with("deep.yaml", "[" * 100_000), ("nests lists or mappings too deeply",)
    ),
    "symlink-to-itself": Malformed(
        _link_to_itself, ("Catalog path", "is a symbolic link loop", "pass an existing")
    ),
    "dangling-symlink": Malformed(
        _dangling_link, ("Catalog path", "is a symbolic link to moved-away, which does not")
    ),
    "missing-path": Malformed(lambda root: root / "nowhere", ("the path does not exist",)),
    "second-document": Malformed(
        _folder_with("two.yaml", ENTRY + "---\n" + dump(entry(id="other-8b"))),
        (
            f"holds a second YAML document (the '---' at line {ENTRY.count(chr(10)) + 1})",
            "a catalog file holds one entry or a list of entries: put each entry in a file",
        ),
    ),
    "number-as-quantization": Malformed(
        _folder_with("m.yaml", ENTRY.replace("  int4:", "  4:")),
        ("field 'sources.4': the quantization key 4 is a number", "(e.g. int4:)"),
    ),
    "yes-as-quantization": Malformed(
        _folder_with("m.yaml", ENTRY.replace("  int4:", "  yes:")),
        ("the quantization key reads as true",),
    ),
    "number-as-profile": Malformed(
        _folder_with("m.yaml", ENTRY.replace("  m4-pro-48gb:", "  48:")),
        ("the hardware profile key 48 is a number", "m4-pro-48gb"),
    ),
    "yaml-error-at-the-end": Malformed(
        _folder_with("m.yaml", "id: x\nsources: {int4: [unclosed\n"),
        ("at the end of the file (line 2)", "fix the YAML syntax"),
    ),
    "empty-folder": Malformed(_empty_folder, ("Catalog folder", "the catalog is empty")),
    "alias-bomb": Malformed(
        _folder_with("m.yaml", _laughs()), ("expands to more than 100,000 values",)
    ),
    "alias-inside-itself": Malformed(
        _folder_with("m.yaml", "id: x\nsources: &s {int4: *s}\n"), ("an endless value",)
    ),
    "not-utf8": Malformed(
        _folder_with("m.yaml", b"id: caf\xe9\n"), ("is not UTF-8 text (byte 0xe9", "save it")
    ),
    "escape-sequences-in-the-id": Malformed(
        _folder_with("m.yaml", dump(entry(id="\x1b]0;owned\x07Bad Id"))),
        ("entry 'Bad Id'", "is not a slug"),
    ),
    "huge-file": Malformed(
        _folder_with("m.yaml", "# padding\n" * 500_000), ("is larger than 4 MiB",)
    ),
}


def _assert_sentence(message: str, case: Malformed) -> None:
    assert "\n" not in message
    assert "\x1b" not in message
    assert "\x07" not in message
    assert message.endswith(".")
    for phrase in case.phrases:
        assert phrase in message, (phrase, message)


@pytest.mark.parametrize("name", list(CASES))
def test_load_catalog_says_it_in_one_sentence(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert message.startswith(f"Catalog {caught.value.kind} ")
    _assert_sentence(message, case)


@pytest.mark.parametrize("name", list(CASES))
def test_pytest_mlx_catalog_stops_with_one_sentence(pytester: pytest.Pytester, name: str) -> None:
    case = CASES[name]
    path = case.build(pytester.path)
    result = pytester.runpytest_subprocess(
        f"--mlx-catalog={path.name}", "-p", "no:cacheprovider", timeout=120
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith("ERROR: Catalog ")
    _assert_sentence(errors[0], case)


def test_a_list_of_entries_in_one_document_loads(tmp_path: Path) -> None:
    """The fix the second-document sentence gives works."""
    (tmp_path / "m.yaml").write_text(dump([entry(), entry(id="other-8b")]), encoding="utf-8")
    assert load_catalog(tmp_path / "m.yaml").ids == ["qwen3-8b", "other-8b"]
