"""How many model servers load at once: as many as fit in the memory available, at least one."""

from __future__ import annotations

from pathlib import Path

from pytest_mlxstack.fixture_models import fixture_model_path
from pytest_mlxstack.stack.flags import ParserChoice
from pytest_mlxstack.stack.models import ResolvedModel
from pytest_mlxstack.stack.startlimit import (
    HEADROOM,
    PROXY_GB,
    SERVER_OVERHEAD_GB,
    expected_gb,
    start_limit,
)


def model(folder: Path, memory_gb: float | None = None) -> ResolvedModel:
    return ResolvedModel(folder, folder.name, ParserChoice(None, None), folder.name, memory_gb)


def weights(tmp_path: Path, name: str, size: int) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    with (folder / "model.safetensors").open("wb") as handle:
        handle.truncate(size)
    return folder


def test_the_catalog_peak_counts_when_it_exceeds_the_weights(tmp_path: Path) -> None:
    folder = weights(tmp_path, "m", 2_000_000_000)
    assert expected_gb(model(folder)) == 2.0 + SERVER_OVERHEAD_GB
    assert expected_gb(model(folder, memory_gb=9.5)) == 9.5


def test_the_fixture_catalog_starts_all_four_at_once_on_this_machine() -> None:
    tiny = model(fixture_model_path("tiny-chat"), memory_gb=0.34)
    assert start_limit([tiny] * 4, available=4.0) == 4


def test_models_that_do_not_fit_together_load_in_turns(tmp_path: Path) -> None:
    big = model(weights(tmp_path, "big", 0), memory_gb=6.0)
    budget_for_two = (2 * 6.0 + PROXY_GB + 0.1) / HEADROOM
    assert start_limit([big] * 4, available=budget_for_two) == 2


def test_one_model_too_large_for_the_memory_is_still_tried(tmp_path: Path) -> None:
    huge = model(weights(tmp_path, "huge", 0), memory_gb=400.0)
    assert start_limit([huge, huge], available=16.0) == 1
