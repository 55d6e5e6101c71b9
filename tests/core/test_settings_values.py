"""The shared checks of setting values: one sentence naming the setting, for any bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.settings_values import (
    SettingError,
    not_a_file,
    port,
    seconds,
    writable_directory,
)


@pytest.mark.parametrize(("text", "expected"), [("10", 10.0), ("0", 0.0), (" 2.5 ", 2.5), (3, 3.0)])
def test_seconds_accepts_finite_non_negative_numbers(text: object, expected: float) -> None:
    assert seconds(text, name="--grace-period") == expected


@pytest.mark.parametrize(
    "text", ["-1", "-0.5", "nan", "NaN", "inf", "-inf", "", "ten", "1e999", True, "1,5"]
)
def test_seconds_refuses_everything_else_in_one_sentence(text: object) -> None:
    with pytest.raises(SettingError) as caught:
        seconds(text, name="ini option mlx_grace_period")
    error = caught.value
    assert isinstance(error, MlxStackError)
    assert isinstance(error, ValueError)
    message = str(error)
    assert message.startswith("ini option mlx_grace_period: ")
    assert message.endswith("; give a number of seconds, 0 or more, such as 10.")
    assert "\n" not in message


def test_port_accepts_auto_and_the_unprivileged_range() -> None:
    assert port("auto", name="--port") is None
    assert port(None, name="--port") is None
    assert port("1024", name="--port") == 1024
    assert port(65535, name="--port") == 65535


@pytest.mark.parametrize("value", ["0", "80", "65536", "99999", "-1", "x", "8000.5", False])
def test_port_refuses_the_rest_naming_the_setting(value: object) -> None:
    with pytest.raises(SettingError, match=r"^--port: .*1024 to 65535, or use auto\.$"):
        port(value, name="--port", free_hint="use auto")


def test_a_file_is_not_a_directory_nor_is_anything_inside_it(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(SettingError, match="f is a file, not a directory"):
        not_a_file(file, name="--home")
    with pytest.raises(SettingError, match=r"sub cannot be a directory: .*f is a file"):
        not_a_file(file / "sub", name="--home")
    assert not_a_file(tmp_path / "new" / "dir", name="--home") == tmp_path / "new" / "dir"


def test_a_symlink_loop_is_not_a_directory(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(SettingError, match=r"--home: .*loop"):
        not_a_file(loop / "sub", name="--home")


def test_writable_directory_creates_it_and_leaves_nothing_behind(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b"
    assert writable_directory(home, name="--home") == home
    assert home.is_dir()
    assert list(home.iterdir()) == []
