"""One declaration per capability: the matrix's column order, the suites' tests and ``n/a``
all follow it, and a name cannot be declared twice or probed without a declaration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from pytest_mlxstack.matrix import capabilities as declarations
from pytest_mlxstack.matrix.capabilities import (
    DECLARED,
    CapabilitySpec,
    DuplicateCapabilityError,
    capability_order,
)
from pytest_mlxstack.matrix.model import Cell, Matrix, Row, RunMetadata
from pytest_mlxstack.matrix.verdicts import Route, Verdict
from pytest_mlxstack.probes import (
    capability_names,
    probe_inference,
    register_capability,
    run_probe,
)
from pytest_mlxstack.probes.binding import BOUND, bind
from pytest_mlxstack.probes.registry import unbound


@pytest.fixture
def restore_registry() -> Iterator[None]:
    declared, bound = dict(DECLARED), dict(BOUND)
    yield
    DECLARED.clear()
    DECLARED.update(declared)
    BOUND.clear()
    BOUND.update(bound)


@dataclass
class Declared:
    tool_calling: bool = False
    thinking: bool = False
    vision: bool = False


def test_every_declared_capability_has_a_probe() -> None:
    assert unbound() == []


def test_a_name_is_declared_once(restore_registry: None) -> None:
    with pytest.raises(DuplicateCapabilityError, match="'inference' is already declared"):
        declarations.declare(CapabilitySpec("inference", "Again"))


def test_a_probe_needs_a_declaration(restore_registry: None) -> None:
    with pytest.raises(ValueError, match="no capability 'nothing' is declared"):
        bind("nothing", probe_inference)


def _matrix(capabilities: list[str]) -> Matrix:
    run = RunMetadata(
        run_id="r", created_at="2026-01-01T00:00:00Z", profile="p", platform="x",
        system="Linux", machine="x86_64", chip="cpu", python="3.11",
    )  # fmt: skip
    cells = [Cell(capability=c, route=Route.DIRECT, verdict=Verdict.PASS) for c in capabilities]
    return Matrix(
        runs=[run], rows=[Row(model="m", quant="q", server="vllm-mlx", profile="p", cells=cells)]
    )


def test_the_matrix_orders_its_columns_as_declared(restore_registry: None) -> None:
    register_capability(CapabilitySpec("echo", "Echo"), probe_inference)
    matrix = _matrix(["zeta", "echo", "thinking", "inference"])
    assert [c for c, _ in matrix.capabilities()] == ["inference", "thinking", "echo", "zeta"]
    assert capability_order()[-1] == "echo"
    assert capability_names(route=Route.DIRECT)[-1] == "echo"


def test_a_registered_capability_is_probed_and_its_requirement_checked(
    restore_registry: None, client: openai.OpenAI
) -> None:
    register_capability(CapabilitySpec("seeing", "Vision", requires=("vision",)), probe_inference)
    skipped = run_probe("seeing", client, "hello", capabilities=Declared())
    assert skipped.verdict is Verdict.NOT_APPLICABLE
    assert "does not declare vision" in skipped.reason
    assert "seeing" in capability_names(route=Route.PROXIED)


def test_docs_list_every_capability_in_column_order() -> None:
    """docs/tiers.md's "Every capability" table has one row per declared capability."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "tiers.md"
    section = docs.read_text(encoding="utf-8").split("## Every capability", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \|", section.split("\n## ", 1)[0], flags=re.M)
    assert rows == list(capability_order())
