"""``--mlx-shard K/N``: one machine of a fleet runs its part of the selected models.

The split is a pure function of the target labels (sorted, dealt round-robin), so every
machine computes the same one; a bad value or an empty shard stops the run with one sentence.
"""

from __future__ import annotations

import random

import pytest

from pytest_mlxstack.catalog import load_catalog
from pytest_mlxstack.fixture_models import VARIANTS, fixture_catalog_path
from pytest_mlxstack.run.selection import (
    SelectionError,
    Shard,
    parse_shard,
    select_targets,
    shard_targets,
)

CATALOG = load_catalog(fixture_catalog_path())


def labels(text: str, requested: list[str] | None = None) -> list[str]:
    targets = select_targets(CATALOG, requested or [])
    return [target.label for target in shard_targets(targets, parse_shard(text))]


def test_the_shards_partition_the_selection_evenly() -> None:
    everything = [target.label for target in select_targets(CATALOG, [])]
    for total in range(1, len(everything) + 1):
        parts = [labels(f"{index}/{total}") for index in range(1, total + 1)]
        assert sorted(label for part in parts for label in part) == sorted(everything)
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1, (total, parts)


def test_the_split_depends_on_the_labels_not_on_the_order_asked() -> None:
    """Two machines that list the models in another order still agree on the shards."""
    ids = list(VARIANTS)
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    for index in (1, 2):
        assert set(labels(f"{index}/2", ids)) == set(labels(f"{index}/2", shuffled))
    sorted_labels = sorted(f"{name}-bf16" for name in ids)
    assert labels("1/2") == [lab for lab in labels("1/1") if lab in sorted_labels[0::2]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/2", "--mlx-shard: '0/2' names shard 0 of 2; write K/N with whole numbers"),
        ("3/2", "--mlx-shard: '3/2' names shard 3 of 2; write K/N"),
        ("a/b", "--mlx-shard: 'a/b' is not a shard K/N; write K/N"),
        ("1/0", "--mlx-shard: '1/0' splits into 0 shards; write K/N"),
        ("2", "--mlx-shard: '2' is not a shard K/N"),
        ("-1/2", "--mlx-shard: '-1/2' is not a shard K/N"),
        ("1/²", "--mlx-shard: '1/²' is not a shard K/N"),
    ],
)
def test_a_bad_shard_is_one_sentence(text: str, message: str) -> None:
    with pytest.raises(SelectionError) as caught:
        parse_shard(text)
    assert str(caught.value).startswith(message)
    assert "such as 1/2" in str(caught.value)


def test_an_empty_shard_is_refused_not_passed() -> None:
    targets = select_targets(CATALOG, ["tiny-chat"])
    with pytest.raises(SelectionError, match=r"shard 2/2 has no model: the selection holds 1 "):
        shard_targets(targets, Shard(2, 2))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def collected_targets(result: pytest.RunResult) -> set[str]:
    return {
        line.split("[", 1)[1].split("-direct-")[0]
        for line in result.outlines
        if "smoke.py::test_capability[" in line and "-direct-" in line
    }


def test_the_option_the_ini_key_and_the_environment_select_a_shard(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = "--mlx-models=tiny-chat,tiny-chat-no-tools"
    first = run(pytester, "--mlx-suites=smoke", models, "--mlx-shard=1/2", "--co", "-q")
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    assert collected_targets(first) == {"tiny-chat-bf16"}

    monkeypatch.setenv("MLXSTACK_SHARD", "2/2")
    second = run(pytester, "--mlx-suites=smoke", models, "--co", "-q")
    assert collected_targets(second) == {"tiny-chat-no-tools-bf16"}

    pytester.makeini("[pytest]\nmlx_shard = 1/2\n")
    by_ini = run(pytester, "--mlx-suites=smoke", models, "--co", "-q")
    assert collected_targets(by_ini) == {"tiny-chat-bf16"}  # the ini key beats the environment


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mlx-shard=3/2"], "--mlx-shard: '3/2' names shard 3 of 2"),
        (["--mlx-shard=x"], "--mlx-shard: 'x' is not a shard K/N"),
        (
            ["--mlx-shard=2/2", "--mlx-models=tiny-chat"],
            "--mlx-shard: shard 2/2 has no model: the selection holds 1 target for 2 shards; "
            "use at most 1 shards",
        ),
    ],
)
def test_a_bad_or_empty_shard_stops_the_run_with_one_sentence(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = run(pytester, "--mlx-suites=smoke", *args, "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, result.errlines
    assert message in errors[0]
    assert "Traceback" not in result.stderr.str()


def test_the_environment_names_itself_in_the_sentence(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXSTACK_SHARD", "0/2")
    result = run(pytester, "--mlx-suites=smoke", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "environment variable MLXSTACK_SHARD: '0/2' names shard 0 of 2" in result.stderr.str()


def test_a_shard_without_suites_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--mlx-shard=1/2", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mlx-shard selects models for the built-in suites; add --mlx-suites" in (
        result.stderr.str()
    )
