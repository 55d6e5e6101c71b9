"""ModelCache.pull through the real huggingface_hub client against a local Hub (HF_ENDPOINT)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_mlxstack.catalog.hubserver import LocalHub
from pytest_mlxstack.process.cache import COMPLETE_MARKER, ModelCache, ModelCacheError

REPO = "tiny-org/tiny-model"
FILES = {
    "config.json": json.dumps({"model_type": "qwen2", "hidden_size": 64}),
    "tokenizer.json": '{"version": "1.0"}',
    "model.safetensors": bytes(range(256)) * 64,
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    with LocalHub() as local:
        local.add_repo(REPO, FILES)
        monkeypatch.setenv("HF_ENDPOINT", local.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield local


def downloads(hub: LocalHub, name: str) -> int:
    """How many times the Hub sent the contents of ``name`` (resolved by branch or commit)."""
    return sum(
        1
        for r in hub.requests
        if r.method == "GET" and "/resolve/" in r.path and r.path.endswith(f"/{name}")
    )


def test_pull_downloads_into_org_name_revision_and_marks_it_complete(
    hub: LocalHub, tmp_path: Path
) -> None:
    cache = ModelCache(tmp_path)

    path = cache.pull(REPO)

    assert path == tmp_path / "tiny-org--tiny-model" / "main"
    for name, content in FILES.items():
        data = (path / name).read_bytes()
        assert data == (content if isinstance(content, bytes) else content.encode())
    assert cache.is_complete(REPO)
    assert json.loads((path / COMPLETE_MARKER).read_text())["repo"] == REPO


def test_a_complete_model_is_served_from_the_cache_without_asking_the_hub(
    hub: LocalHub, tmp_path: Path
) -> None:
    cache = ModelCache(tmp_path)
    cache.pull(REPO)
    hub.clear_requests()

    assert cache.pull(REPO) == cache.path_for(REPO)
    assert hub.requests == []


def test_an_interrupted_download_is_detected_and_completed(hub: LocalHub, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    target = cache.path_for(REPO)
    target.mkdir(parents=True)
    (target / "config.json").write_text(FILES["config.json"])  # what got through before
    (target / "model.safetensors").write_bytes(b"\0" * 100)  # half a file, wrong bytes

    assert not cache.is_complete(REPO)
    path = cache.pull(REPO)

    assert (path / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert cache.is_complete(REPO)


def test_offline_uses_the_cache_and_refuses_to_download(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ModelCache(tmp_path)
    cache.pull(REPO)
    hub.add_repo("tiny-org/other", FILES)
    hub.clear_requests()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    assert cache.pull(REPO) == cache.path_for(REPO)
    with pytest.raises(ModelCacheError) as info:
        cache.pull("tiny-org/other")

    assert str(info.value) == (
        f"model tiny-org/other is not (completely) in the cache at "
        f"{cache.path_for('tiny-org/other')} and HF_HUB_OFFLINE is set; unset HF_HUB_OFFLINE "
        "to download it, or pull it once on a machine that can reach the Hub"
    )
    assert hub.requests == []


def test_hf_token_opens_a_private_repository(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("tiny-org/private", FILES, private=True, allowed_tokens=["hf_tokenabcdefghijk"])
    cache = ModelCache(tmp_path)

    with pytest.raises(ModelCacheError, match=r"was not found on .* \(or it is private\)"):
        cache.pull("tiny-org/private")
    monkeypatch.setenv("HF_TOKEN", "hf_tokenabcdefghijk")
    path = cache.pull("tiny-org/private")

    assert (path / "config.json").is_file()


def test_gated_missing_and_bad_names_are_one_sentence_each(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("tiny-org/gated", FILES, gated="manual")
    cache = ModelCache(tmp_path)

    with pytest.raises(ModelCacheError) as gated:
        cache.pull("tiny-org/gated")
    with pytest.raises(ModelCacheError) as missing:
        cache.pull("tiny-org/nothing-here")
    with pytest.raises(ModelCacheError) as bad:
        cache.pull("no-slash")

    assert str(gated.value) == (
        f"model tiny-org/gated is gated on {hub.url}: accept its terms on the model page and "
        "set HF_TOKEN to a token of that account"
    )
    assert str(missing.value) == (
        f"model tiny-org/nothing-here was not found on {hub.url} (or it is private); check the "
        "repository id, or set HF_TOKEN if it is private"
    )
    assert "'no-slash' is not a Hugging Face repository id" in str(bad.value)
    assert not cache.is_complete("tiny-org/gated")


def test_a_pinned_revision_gets_its_own_folder(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("tiny-org/tagged", FILES, tags=["v1"])
    cache = ModelCache(tmp_path)

    path = cache.pull("tiny-org/tagged", revision="v1")

    assert path == tmp_path / "tiny-org--tagged" / "v1"
    assert cache.is_complete("tiny-org/tagged", "v1")
    assert not cache.is_complete("tiny-org/tagged")


SLOW_REPO = "tiny-org/slow-model"
PROGRESS = re.compile(r"^downloading tiny-org/slow-model: (\d+) (B|kB|MB) of 3 MB \((\d+)%\)$")


def test_a_download_reports_its_bytes_while_it_runs(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo(SLOW_REPO, {**FILES, "model.safetensors": 3_000_000})
    hub.latency = 0.3  # every request: the download takes over a second
    lines: list[str] = []

    path = ModelCache(tmp_path).pull(SLOW_REPO, on_progress=lines.append, progress_interval=0.1)

    assert lines[0] == f"downloading {SLOW_REPO}@main into {tmp_path}"
    assert re.fullmatch(rf"downloaded {SLOW_REPO}: 3 MB in \d+\.\d s", lines[-1]), lines
    progress = [PROGRESS.match(line) for line in lines[1:-1]]
    assert progress, lines
    assert all(progress), lines  # every line between: bytes so far of the Hub's total
    percents = [int(match[3]) for match in progress if match]
    assert percents == sorted(percents)
    assert (path / "model.safetensors").stat().st_size == 3_000_000


def test_progress_lines_come_at_most_every_interval(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo(SLOW_REPO, {**FILES, "model.safetensors": 3_000_000})
    hub.latency = 0.2
    lines: list[str] = []

    ModelCache(tmp_path).pull(SLOW_REPO, on_progress=lines.append, progress_interval=60)

    assert [line.split(":")[0].split(" into ")[0] for line in lines] == [
        f"downloading {SLOW_REPO}@main",
        f"downloaded {SLOW_REPO}",
    ]


def test_a_failed_download_reports_its_start_and_raises_its_error(
    hub: LocalHub, tmp_path: Path
) -> None:
    hub.add_repo("tiny-org/gated", FILES, gated="manual")
    cache = ModelCache(tmp_path)
    lines: list[str] = []

    with pytest.raises(ModelCacheError, match="is gated on"):
        cache.pull("tiny-org/gated", on_progress=lines.append, progress_interval=60)
    cache.pull(REPO)
    cache.pull(REPO, on_progress=lines.append)  # complete: nothing to say

    assert lines == [f"downloading tiny-org/gated@main into {tmp_path}"]


PULL = """
import sys
from pytest_mlxstack.process.cache import ModelCache
print(ModelCache(sys.argv[1]).pull(sys.argv[2]))
"""


def test_concurrent_pulls_from_several_processes_download_once(
    hub: LocalHub, tmp_path: Path
) -> None:
    hub.latency = 0.05  # keeps the first download busy while the others arrive
    pullers = [
        subprocess.Popen(
            [sys.executable, "-c", PULL, str(tmp_path), REPO], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in pullers]

    assert [p.returncode for p in pullers] == [0, 0, 0]
    assert set(outputs) == {str(tmp_path / "tiny-org--tiny-model" / "main")}
    assert downloads(hub, "model.safetensors") == 1
    assert ModelCache(tmp_path).is_complete(REPO)
