"""examples/downstream, run the way its own repository runs it: a copy in a temporary folder,
a real pytest subprocess with the plugin installed, the real stack on the fixture model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pytest_mlxstack.catalog.hubserver import LocalHub
from pytest_mlxstack.fixture_models import fixture_model_path
from pytest_mlxstack.matrix.model import Matrix, load_matrix

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "downstream"
# The names examples/downstream/.gitignore ignores ("name/" lines), wherever they are.
IGNORED_NAMES = {
    line.strip().strip("/")
    for line in (EXAMPLE / ".gitignore").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
}
HUB_REPO = "mlx-community/Qwen3-0.6B-4bit"  # the hub entry of the example's catalog
TOOL_TEMPLATE = (
    "{% if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
)

# The cells the example's tests record (tests/*.py), all on its fast tier.
EXPECTED_CELLS = {
    ("inference", "direct"): "tests/test_smoke.py::test_fast_tier_answers",
    ("tool_calling", "direct"): "tests/test_smoke.py::test_fast_tier_calls_tools",
    ("model_listing", "proxied"): "tests/test_integration.py::test_proxy_lists_the_fast_tier",
    ("streaming", "proxied"): "tests/test_integration.py::test_proxy_streams",
    ("thinking", "proxied"): "tests/test_harness.py::test_app_sees_reasoning",
}


@dataclass(frozen=True)
class Downstream:
    root: Path
    env: dict[str, str]

    def pytest(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """pytest in the downstream folder, as its README says, with this project's Python."""
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )


def set_up_leftovers(directory: str, names: list[str]) -> set[str]:
    """What following the example's README in this checkout leaves in it (its ``.venv``, the
    ``models/tiny-chat`` link, matrices, caches): everything its ``.gitignore`` files ignore,
    which a copy must not take along (a 2.7 GB ``.venv``; a link the copy makes itself)."""
    if Path(directory).name == "models":
        return {name for name in names if name != ".gitignore"}  # models/.gitignore: all else
    return {name for name in names if name in IGNORED_NAMES}


def make_downstream(tmp: Path, source: Path = EXAMPLE) -> Downstream:
    """A copy of the example, its local model linked as the README's set-up step does, and an
    environment whose every home is inside ``tmp``."""
    root = tmp / "downstream"
    shutil.copytree(source, root, ignore=set_up_leftovers, symlinks=True)
    (root / "models" / "tiny-chat").symlink_to(fixture_model_path(), target_is_directory=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLXSTACK_", "PYTEST_", "HF_")) and key != "PYTHONPATH"
    }
    env |= {"HOME": str(tmp / "home"), "MLXSTACK_HOME": str(tmp / "mlxstack-home")}
    return Downstream(root, env)


@pytest.fixture(scope="module")
def downstream(tmp_path_factory: pytest.TempPathFactory) -> Downstream:
    return make_downstream(tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="module")
def own_run(downstream: Downstream) -> subprocess.CompletedProcess[str]:
    """The example's own test suite, once for the module (one stack, ~10 s)."""
    return downstream.pytest()


def test_its_own_tests_pass_on_the_fixture_model(own_run: subprocess.CompletedProcess[str]):
    assert own_run.returncode == 0, own_run.stdout + own_run.stderr
    assert "6 passed" in own_run.stdout, own_run.stdout
    # One vllm-mlx for the whole session, started from the example's own catalog entry.
    assert "team-tiny-chat:bf16 as team-tiny-chat: 1 start(s)" in own_run.stdout


def test_its_matrix_has_the_cells_its_tests_recorded(
    downstream: Downstream, own_run: subprocess.CompletedProcess[str]
):
    assert own_run.returncode == 0, own_run.stdout + own_run.stderr
    latest = downstream.root / "matrices" / "latest.json"  # mlx_matrix_dir of its pyproject
    matrix: Matrix = load_matrix(latest)
    assert [(row.model, row.quant) for row in matrix.rows] == [("team-tiny-chat", "bf16")]
    cells = {(cell.capability, cell.route.value): cell for _, cell in matrix.iter_cells()}
    assert set(cells) == set(EXPECTED_CELLS)
    for key, test_id in EXPECTED_CELLS.items():
        assert cells[key].verdict.value == "pass", (key, cells[key].reason)
        assert cells[key].test_id == test_id
    assert (downstream.root / "matrices" / "latest.html").is_file()
    assert len(list((downstream.root / "matrices" / "runs").glob("*.json"))) == 1


def test_its_stack_is_gone_after_the_run(own_run: subprocess.CompletedProcess[str]):
    assert own_run.returncode == 0, own_run.stdout + own_run.stderr
    # Its vllm-mlx was served as team-tiny-chat (`--served-model-name`), its LiteLLM read a
    # config under its MLXSTACK_HOME: neither may outlive the session.
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or ())
        if "team-tiny-chat" in command and "pytest" not in command:
            left.append((process.info["pid"], command))
    assert left == []


def publish_hub_entry(hub: LocalHub, *, weights_gb: float = 0.35) -> None:
    hub.add_repo(
        HUB_REPO,
        {
            "config.json": json.dumps({"model_type": "qwen3"}),
            "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE"}}),
            "tokenizer_config.json": json.dumps({"chat_template": TOOL_TEMPLATE}),
            "model.safetensors": int(weights_gb * 1e9),
        },
    )


def test_its_catalog_validates_against_a_hub(tmp_path: Path, local_hub: LocalHub):
    publish_hub_entry(local_hub)
    run = make_downstream(tmp_path).pytest(
        "--mlx-catalog=catalog/", "-v", env={"HF_ENDPOINT": local_hub.url}
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_hub[team-qwen3-0.6b-int4] PASSED" in run.stdout
    assert "test_local_files[team-tiny-chat-bf16] PASSED" in run.stdout
    assert any(HUB_REPO in request for request in map(str, local_hub.requests))


def test_its_catalog_check_fails_when_the_hub_weights_differ(tmp_path: Path, local_hub: LocalHub):
    publish_hub_entry(local_hub, weights_gb=1.2)  # the entry says 0.35 GB
    run = make_downstream(tmp_path).pytest(
        "--mlx-catalog=catalog/", "-v", env={"HF_ENDPOINT": local_hub.url}
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "test_hub[team-qwen3-0.6b-int4] FAILED" in run.stdout
    assert "weights take 1.20 GB on the Hub but sources.int4.disk_size_gb says 0.35" in run.stdout


def test_its_catalog_structure_validates_offline(tmp_path: Path):
    run = make_downstream(tmp_path).pytest("--mlx-catalog=catalog/", env={"HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "7 passed, 2 skipped" in run.stdout


def test_a_copy_leaves_out_what_following_the_readme_created(tmp_path: Path):
    """A user who set the example up in this checkout has its .venv, the models/tiny-chat link,
    matrices and caches in it: the copy must neither take them nor trip over the link."""
    used = tmp_path / "used-example"
    shutil.copytree(EXAMPLE, used, ignore=set_up_leftovers)
    (used / ".venv" / "bin").mkdir(parents=True)
    (used / ".venv" / "bin" / "python").write_text("a 2.7 GB environment")
    (used / "models" / "tiny-chat").symlink_to(fixture_model_path(), target_is_directory=True)
    for leftover in ("matrices/runs", ".pytest_cache/v", "tests/__pycache__", ".mlxstack-ci"):
        (used / leftover).mkdir(parents=True)
        (used / leftover / "file").write_text("left by a run")

    root = make_downstream(tmp_path / "copy", source=used).root

    assert {".venv", "matrices", ".pytest_cache", ".mlxstack-ci"}.isdisjoint(
        path.name for path in root.iterdir()
    )
    assert not (root / "tests" / "__pycache__").exists()
    assert sorted(path.name for path in (root / "models").iterdir()) == [".gitignore", "tiny-chat"]
    assert (root / "models" / "tiny-chat").resolve() == fixture_model_path().resolve()
    assert (root / "tests" / "test_smoke.py").is_file()
