"""The fleet workflow (``.github/workflows/fleet.yml``): shards over runner labels, one merge
job. Its own ``run:`` scripts run here under bash: the shard job's pytest command on two shards
of the fixture catalog (real vllm-mlx and LiteLLM), the merge job's merge, render and diff.
Two shards merged equal the unsharded run cell for cell (verdicts and attributions)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pytest_mlxstack.matrix.model import Matrix, load_matrix
from pytest_mlxstack.wiring.skips import (
    skip_no_litellm,
    skip_no_mlx_backend,
    skip_no_openai,
    skip_no_vllm,
)

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / ".github" / "workflows" / "fleet.yml"
WORKFLOW = yaml.safe_load(FLEET.read_text(encoding="utf-8"))
SHARD_JOB, MERGE_JOB = WORKFLOW["jobs"]["shard"], WORKFLOW["jobs"]["merge"]
AXES = SHARD_JOB["strategy"]["matrix"]
# The real runs: two models (one negative control), two capabilities, to stay cheap.
CHEAP = ["--mlx-models=tiny-chat,tiny-chat-no-tools", "-k", "inference or tool_calling"]


def step(job: dict[str, Any], name_start: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if s.get("name", "").startswith(name_start)]
    return found


def filled(text: str, **matrix: object) -> str:
    return re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(matrix[m.group(1)]), text)


def run_step(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A ``run:`` script as the runner runs it (``bash -e``), this mlxstack on the PATH."""
    bin_dir = Path(sys.executable).parent
    base = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(cwd),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={**os.environ, **base, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_shards_cover_every_runner_and_the_merge_expects_them_all() -> None:
    shards = AXES["shard"]
    total = len(shards)
    assert shards == list(range(1, total + 1))
    command = step(SHARD_JOB, "Smoke tier")["run"]
    assert f"--mlx-shard=${{{{ matrix.shard }}}}/{total}" in command
    assert int(MERGE_JOB["env"]["EXPECTED_SHARDS"]) == len(AXES["runner"]) * total
    assert MERGE_JOB["needs"] == "shard"
    assert any("ubuntu" in label for label in AXES["runner"])
    assert sum(label.startswith("macos") for label in AXES["runner"]) >= 2
    # Each shard's artifact has a name of its own, and the merge job downloads them all.
    (upload,) = [s for s in SHARD_JOB["steps"] if "latest.json" in str(s.get("with", {}))]
    names = {
        filled(upload["with"]["name"], runner=runner, shard=shard)
        for runner in AXES["runner"]
        for shard in shards
    }
    assert len(names) == len(AXES["runner"]) * total
    (download,) = [
        s for s in MERGE_JOB["steps"] if str(s.get("uses", "")).startswith("actions/download")
    ]
    prefix = download["with"]["pattern"].removesuffix("*")
    assert all(name.startswith(prefix) for name in names)
    # Rows are keyed by machine profile: each runner pins its own label.
    assert SHARD_JOB["env"]["PYTEST_ADDOPTS"] == "--mlx-machine-profile=ci-${{ matrix.runner }}"


def write_shard_matrix(path: Path, *, model: str, profile: str, verdict: str = "pass") -> None:
    from pytest_mlxstack.matrix.collect import MatrixCollector, cell_payload, row_payload
    from pytest_mlxstack.matrix.metadata import collect_run_metadata
    from pytest_mlxstack.matrix.store import write_matrix_file
    from pytest_mlxstack.matrix.verdicts import Attribution, ProbeResult, Verdict

    collector = MatrixCollector()
    blame = None if verdict == "pass" else Attribution.PARSER
    probe = ProbeResult("tool_calling", Verdict(verdict), f"tool_calling {verdict}", blame)
    collector.add_cell(cell_payload(probe, model=model, quant="bf16", route="direct"))
    collector.add_row(row_payload(model=model, quant="bf16"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_matrix_file(collector.build(collect_run_metadata(profile=profile)), path)


def merge_and_compare(work: Path, expected: int) -> tuple[int, str]:
    """The merge job's merge and compare steps, in order, as the runner runs them."""
    summary = work / "summary.md"
    summary.write_text("")
    env = {
        "GITHUB_STEP_SUMMARY": str(summary),
        "FLEET_DIR": MERGE_JOB["env"]["FLEET_DIR"],
        "EXPECTED_SHARDS": str(expected),
    }
    merged = run_step(step(MERGE_JOB, "Merge the shards")["run"], work, **env)
    output = merged.stdout + merged.stderr
    if (work / env["FLEET_DIR"] / "fleet.json").is_file():
        compared = run_step(step(MERGE_JOB, "Compare with the previous")["run"], work, **env)
        output += compared.stdout + compared.stderr
        status = merged.returncode or compared.returncode
    else:
        status = merged.returncode
    return status, summary.read_text() + output


def test_the_merge_job_merges_renders_and_diffs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    status, text = merge_and_compare(work, expected=2)  # no shard uploaded anything
    assert status == 1
    assert "Fleet: 0 of 2 shard matrices." in text

    for shard, model in ((1, "alpha"), (2, "beta")):
        write_shard_matrix(
            work / "shards" / f"matrix-fleet-macos-14-shard-{shard}" / "latest.json",
            model=model,
            profile="ci-macos-14",
        )
    status, text = merge_and_compare(work, expected=2)
    assert status == 0, text
    assert "No previous fleet matrix" in text
    fleet = work / "matrices" / "fleet"
    merged = load_matrix(fleet / "fleet.json")
    assert sorted(row.model for row in merged.rows) == ["alpha", "beta"]
    assert len(merged.runs) == 2
    assert "alpha" in (fleet / "fleet.html").read_text()

    (work / "previous").mkdir()
    (fleet / "fleet.json").rename(work / "previous" / "fleet.json")
    write_shard_matrix(  # beta's tool calling broke on shard 2
        work / "shards" / "matrix-fleet-macos-14-shard-2" / "latest.json",
        model="beta",
        profile="ci-macos-14",
        verdict="fail",
    )
    status, text = merge_and_compare(work, expected=2)
    assert status == 1, text
    assert "1 regression," in text
    assert r"| beta | bf16 | ci-macos-14 | tool\_calling | direct | pass | fail |" in text

    status, text = merge_and_compare(work, expected=3)  # a shard's matrix never came
    assert status == 1
    assert "only 2 of 3 shards uploaded a matrix" in text


def cells_of(matrix: Matrix) -> dict[tuple[str, ...], tuple[str, str | None, str | None]]:
    return {
        (row.model, row.quant, row.server, row.profile, cell.capability, cell.route.value): (
            cell.verdict.value,
            cell.attribution.value if cell.attribution else None,
            cell.expectation.status if cell.expectation else None,
        )
        for row, cell in matrix.iter_cells()
    }


def shard_command(shard: int, runner: str) -> list[str]:
    """The shard job's pytest command for one combination, as bash would split it."""
    script = filled(step(SHARD_JOB, "Smoke tier")["run"], shard=shard, runner=runner)
    argv = shlex.split(script.replace('"$MATRIX_DIR"', "matrices/fleet-shard"))
    assert argv[:3] == ["python", "-m", "pytest"]
    return argv[3:]


@skip_no_vllm
@skip_no_litellm
@skip_no_mlx_backend
@skip_no_openai
def test_two_shards_merged_equal_the_unsharded_run(tmp_path: Path) -> None:
    runner = AXES["runner"][0]
    env = {
        "MLXSTACK_HOME": str(tmp_path / "mlxhome"),
        "PYTEST_ADDOPTS": filled(SHARD_JOB["env"]["PYTEST_ADDOPTS"], runner=runner),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    work = tmp_path / "work"
    work.mkdir()

    def pytest_run(argv: list[str], where: Path) -> subprocess.CompletedProcess[str]:
        where.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv, *CHEAP],
            cwd=where,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=900,
        )

    for shard in AXES["shard"]:
        where = tmp_path / f"runner-{shard}"
        done = pytest_run(shard_command(shard, runner), where)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        artifact = work / "shards" / f"matrix-fleet-{runner}-shard-{shard}"
        artifact.mkdir(parents=True)
        (where / "matrices" / "fleet-shard" / "latest.json").rename(artifact / "latest.json")
        shard_rows = load_matrix(artifact / "latest.json").rows
        assert len(shard_rows) == 1, [row.model for row in shard_rows]  # one model per shard
        (run,) = load_matrix(artifact / "latest.json").runs
        assert run.provenance["shard"] == f"{shard}/{len(AXES['shard'])}"

    whole = [arg for arg in shard_command(1, runner) if not arg.startswith("--mlx-shard")]
    done = pytest_run(whole, tmp_path / "unsharded")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    unsharded = load_matrix(tmp_path / "unsharded" / "matrices" / "fleet-shard" / "latest.json")

    status, text = merge_and_compare(work, expected=len(AXES["shard"]))
    assert status == 0, text

    fleet = load_matrix(work / "matrices" / "fleet" / "fleet.json")
    assert cells_of(fleet) == cells_of(unsharded)
    assert len(cells_of(fleet)) == 6  # 2 models x inference, tool_calling(_streaming)
    failed = {key: value for key, value in cells_of(fleet).items() if value[0] == "fail"}
    assert failed, "the negative control's known failure is in the fleet matrix too"
    assert {value[1:] for value in failed.values()} == {("model", "known_failure")}
    assert json.loads((work / "matrices" / "fleet" / "fleet.json").read_text())["runs"]
