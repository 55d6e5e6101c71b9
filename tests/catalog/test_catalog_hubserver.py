"""The local Hub answers huggingface_hub the way the real Hub does, through the real client."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from pytest_mlxstack.catalog.hubserver import LocalHub

FILES = {"config.json": '{"model_type": "qwen3"}', "model.safetensors": b"\x01" * 4096}


def api(hub: LocalHub, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def test_model_info_lists_files_sizes_and_flags(hub: LocalHub) -> None:
    repo = hub.add_repo("org/model", {**FILES, "big.safetensors": 5_000_000_000})
    info = api(hub).model_info("org/model", files_metadata=True)
    assert info.sha == repo.sha
    assert info.gated is False
    assert info.private is False
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    assert sizes == {"config.json": 23, "model.safetensors": 4096, "big.safetensors": 5_000_000_000}
    big = next(s for s in info.siblings or [] if s.rfilename == "big.safetensors")
    assert big.lfs is not None
    assert big.lfs.size == 5_000_000_000


def test_missing_repo_is_401_anonymously_and_404_with_a_token(hub: LocalHub) -> None:
    hub.add_token("hf_valid")
    with pytest.raises(RepositoryNotFoundError) as anonymous:
        api(hub).model_info("org/nothing")
    assert not isinstance(anonymous.value, GatedRepoError)
    assert anonymous.value.response.status_code == 401
    assert anonymous.value.response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError) as with_token:
        api(hub, "hf_valid").model_info("org/nothing")
    assert with_token.value.response.status_code == 404


def test_private_repo_looks_missing_unless_the_token_may_read_it(hub: LocalHub) -> None:
    hub.add_repo("org/secret", FILES, private=True, allowed_tokens=["hf_owner"])
    hub.add_token("hf_other")
    for token, status in ((False, 401), ("hf_other", 404)):
        with pytest.raises(RepositoryNotFoundError) as caught:
            api(hub, token).model_info("org/secret")
        assert caught.value.response.status_code == status
    assert api(hub, "hf_owner").model_info("org/secret").private is True


def test_gated_repo_shows_metadata_but_guards_files(hub: LocalHub) -> None:
    hub.add_repo("org/gated", FILES, gated="manual", allowed_tokens=["hf_granted"])
    hub.add_token("hf_other")
    assert api(hub).model_info("org/gated").gated == "manual"
    url = hf_hub_url("org/gated", "config.json", endpoint=hub.url)
    for token, status in ((False, 401), ("hf_other", 403)):
        with pytest.raises(GatedRepoError) as caught:
            get_hf_file_metadata(url, token=token)
        assert caught.value.response.status_code == status
    assert get_hf_file_metadata(url, token="hf_granted").size == 23


def test_unknown_token_is_rejected_as_invalid_credentials(hub: LocalHub) -> None:
    hub.add_repo("org/model", FILES)
    with pytest.raises(HfHubHTTPError) as caught:
        api(hub, "hf_forged").model_info("org/model")
    assert not isinstance(caught.value, RepositoryNotFoundError)
    assert caught.value.response.status_code == 401


def test_revisions_refs_and_commit_shas(hub: LocalHub) -> None:
    sha = "a09c5dceaaa3f66f0f0e48bce98922ab92b4b59f"
    hub.add_repo("org/model", FILES, branches=("main", "dev"), tags=("v1.0",), commit=sha)
    for revision in ("main", "dev", "v1.0", sha):
        assert api(hub).model_info("org/model", revision=revision).sha == sha
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info("org/model", revision="0" * 40)
    refs = api(hub).list_repo_refs("org/model")
    assert [b.name for b in refs.branches] == ["main", "dev"]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", sha)]


def test_file_metadata_headers_and_missing_entry(hub: LocalHub) -> None:
    repo = hub.add_repo("org/model", FILES)
    meta = get_hf_file_metadata(hf_hub_url("org/model", "model.safetensors", endpoint=hub.url))
    assert meta.size == 4096
    assert meta.commit_hash == repo.sha
    assert meta.etag
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url("org/model", "absent.json", endpoint=hub.url))


def test_snapshot_download_gets_the_real_contents(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("org/model", {**FILES, "nested/extra.txt": "hello"})
    folder = Path(snapshot_download("org/model", endpoint=hub.url, cache_dir=tmp_path, token=False))
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert (folder / "nested" / "extra.txt").read_text() == "hello"
    assert (folder / "config.json").read_text() == FILES["config.json"]


def test_injected_failures_carry_status_and_retry_after(hub: LocalHub) -> None:
    hub.add_repo("org/model", FILES)
    hub.fail_next(1, status=429, retry_after=3, match="org/model")
    with pytest.raises(HfHubHTTPError) as caught:
        api(hub).model_info("org/model")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "3"
    assert api(hub).model_info("org/model").sha  # only the next request failed


def test_request_log_records_auth_without_the_token(hub: LocalHub) -> None:
    hub.add_repo("org/model", FILES, allowed_tokens=["hf_secret_value"])
    api(hub, "hf_secret_value").model_info("org/model")
    (request,) = hub.requests
    assert (request.method, request.path, request.status) == ("GET", "/api/models/org/model", 200)
    assert request.authenticated is True
    assert "hf_secret_value" not in repr(hub.requests)


def test_stop_closes_the_port() -> None:
    hub = LocalHub().start()
    host, port = hub.url.removeprefix("http://").split(":")
    hub.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=1).close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{host}:{port}/api/models/a/b", timeout=2)


def test_a_request_is_recorded_before_its_answer_reaches_the_client(hub: LocalHub) -> None:
    """Callers read ``requests`` right after their call returns: it must be there already.

    The body (64 MB, far more than socket buffers hold) is left unread, so the server is still
    writing it: a request recorded only once answered would be missing here, every time.
    """
    hub.add_repo("org/big", {"model.safetensors": 64 << 20})
    url = f"{hub.url}/org/big/resolve/main/model.safetensors"
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        assert [(r.method, r.path, r.status) for r in hub.requests] == [
            ("GET", "/org/big/resolve/main/model.safetensors", 200)
        ]
