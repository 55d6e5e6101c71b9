"""Reading files a user named (``process.textfiles``) and the YAML in them
(``process.yamlfiles``): every odd file is one phrase, in bounded time."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from pytest_mlxstack.process.textfiles import FileReadError, read_text_file
from pytest_mlxstack.process.yamlfiles import YamlError, load_yaml


def problem_reading(path: Path, max_bytes: int = 1000) -> str:
    with pytest.raises(FileReadError) as caught:
        read_text_file(path, max_bytes=max_bytes)
    return caught.value.problem


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("héllo\n", encoding="utf-8")
    assert read_text_file(tmp_path / "f", max_bytes=100) == "héllo\n"
    (tmp_path / "link").symlink_to("f")
    assert read_text_file(tmp_path / "link", max_bytes=100) == "héllo\n"


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert problem_reading(tmp_path / "pipe") == "is a named pipe, not a regular file"


def test_a_socket_and_a_device_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert problem_reading(path) == "is a socket, not a regular file"
    assert problem_reading(Path("/dev/zero")) == "is a character device, not a regular file"


def test_links_that_lead_nowhere_are_told_apart_from_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "dangling").symlink_to("gone")
    assert problem_reading(tmp_path / "loop") == "is a symbolic link loop (it leads back to itself)"
    assert problem_reading(tmp_path / "dangling") == (
        "is a symbolic link to gone, which does not exist"
    )
    assert problem_reading(tmp_path / "absent") == "does not exist"
    assert problem_reading(tmp_path) == "is a directory, not a file"


def test_size_and_encoding_are_checked(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 1001)
    assert problem_reading(tmp_path / "big") == (
        "is larger than 1000 bytes, far more than such a file holds"
    )
    (tmp_path / "latin").write_bytes(b"caf\xe9")
    assert problem_reading(tmp_path / "latin") == "is not UTF-8 text (byte 0xe9 at offset 3)"


def yaml_problem(text: str, **options: object) -> YamlError:
    with pytest.raises(YamlError) as caught:
        load_yaml(text, one_document="one document, please", **options)  # type: ignore[arg-type]
    return caught.value


def test_yaml_that_is_fine_loads() -> None:
    assert load_yaml("a: [1, 2]\n", one_document="-") == {"a": [1, 2]}
    assert load_yaml("---\na: 1\n", one_document="-") == {"a": 1}
    assert load_yaml("a: &x [1, 2]\nb: *x\n", one_document="-") == {"a": [1, 2], "b": [1, 2]}


def test_a_second_document_is_not_called_a_syntax_error() -> None:
    error = yaml_problem("a: 1\n---\nb: 2\n")
    assert error.problem == (
        "holds a second YAML document (the '---' at line 2), but the file is one document"
    )
    assert error.fix == "one document, please"


def test_deep_nesting_and_alias_bombs_are_bounded() -> None:
    assert yaml_problem("[" * 100_000).problem == "nests lists or mappings too deeply"
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    assert "expands to more than 100,000 values" in yaml_problem("\n".join(bomb)).problem
    assert "an endless value" in yaml_problem("a: &a [*a]\n").problem


def test_an_error_at_the_end_cites_the_last_line() -> None:
    problem = yaml_problem("a: 1\nb: [x, y\n").problem
    assert problem.startswith("is not valid YAML at the end of the file (line 2)")
    assert "a flow sequence that starts at line 2, column 4" in problem


def test_a_loader_s_own_errors_pass_through() -> None:
    class Refusing(yaml.SafeLoader):
        def construct_document(self, node: yaml.Node) -> object:
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        load_yaml("a: 1\n", loader=Refusing, one_document="-", passthrough=(KeyError,))
