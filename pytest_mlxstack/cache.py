"""A persistent model cache: Hugging Face repositories downloaded once, reused across runs.

Each ``(repo, revision)`` lives in ``<root>/<org>--<name>/<revision>/``, a plain folder that
``vllm-mlx serve`` can load. A download runs under a file lock per repository, so several xdist
workers asking for the same model at once download it once. A completion marker is written
atomically after ``snapshot_download`` returns, so a download interrupted earlier (killed
worker, lost network) is noticed and resumed instead of being served half-written.

``HF_TOKEN``, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read at each call, not at import.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_mlxstack.atomic import write_json_atomic
from pytest_mlxstack.paths import default_cache_dir

COMPLETE_MARKER = ".mlxstack-complete.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRUE = {"1", "true", "yes", "on"}


class ModelCacheError(RuntimeError):
    """A model could not be provided; the message says which, why, and what to do."""


class ModelCache:
    """Models downloaded through ``huggingface_hub`` into ``root`` (default: the user cache)."""

    def __init__(self, root: Path | str | None = None, *, lock_timeout: float = -1) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.lock_timeout = lock_timeout  # seconds to wait for another process; -1: forever

    def path_for(self, repo: str, revision: str | None = None) -> Path:
        """Where ``repo`` at ``revision`` (default ``main``) lives once pulled."""
        org, name = _split(repo)
        return self.root / f"{org}--{name}" / _revision_dir(revision)

    def is_complete(self, repo: str, revision: str | None = None) -> bool:
        """Whether a finished download of ``repo`` at ``revision`` is in the cache."""
        return (self.path_for(repo, revision) / COMPLETE_MARKER).is_file()

    def pull(
        self,
        repo: str,
        revision: str | None = None,
        *,
        allow_patterns: list[str] | None = None,
        refresh: bool = False,
    ) -> Path:
        """The local folder of ``repo`` at ``revision``, downloading it first if needed.

        A completed download is returned without asking the Hub (so offline runs work) unless
        ``refresh`` is true. With ``HF_HUB_OFFLINE`` set, a model that is not complete in the
        cache is an error rather than a download attempt.
        """
        target = self.path_for(repo, revision)
        if not refresh and self.is_complete(repo, revision):
            return target
        if _offline():
            raise ModelCacheError(
                f"model {repo}{_at(revision)} is not (completely) in the cache at {target} and "
                "HF_HUB_OFFLINE is set; unset HF_HUB_OFFLINE to download it, or pull it once "
                "on a machine that can reach the Hub"
            )
        lock_path = self.root / ".locks" / f"{target.parent.name}.lock"
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelCacheError(
                f"cannot create the model cache at {self.root}: {exc.strerror}; point "
                "--mlx-cache-dir (or MLXSTACK_CACHE_DIR) at a writable directory"
            ) from None
        try:
            with FileLock(str(lock_path), timeout=self.lock_timeout):
                # Another worker may have finished the download while we waited.
                if not refresh and self.is_complete(repo, revision):
                    return target
                self._download(repo, revision, target, allow_patterns)
        except Timeout:
            raise ModelCacheError(
                f"model {repo}{_at(revision)}: another process has held the download lock "
                f"{lock_path} for over {self.lock_timeout:g} s; wait for it or remove a stale "
                "lock file"
            ) from None
        return target

    def _download(
        self, repo: str, revision: str | None, target: Path, allow_patterns: list[str] | None
    ) -> None:
        from huggingface_hub import snapshot_download

        endpoint = os.environ.get("HF_ENDPOINT") or None
        marker = target / COMPLETE_MARKER
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()  # a refresh re-validates; an interruption now leaves it incomplete
        target.mkdir(parents=True, exist_ok=True)
        try:
            snapshot_download(
                repo_id=repo,
                revision=revision,
                local_dir=str(target),
                endpoint=endpoint,
                token=os.environ.get("HF_TOKEN") or None,
                allow_patterns=allow_patterns,
            )
        except Exception as exc:
            raise ModelCacheError(_explain(exc, repo, revision, endpoint)) from None
        write_json_atomic(
            marker,
            {
                "repo": repo,
                "revision": revision or "main",
                "endpoint": endpoint or "https://huggingface.co",
                "completed_at": time.time(),
            },
        )


def _split(repo: str) -> tuple[str, str]:
    if not isinstance(repo, str) or not _REPO_ID.match(repo) or ".." in repo:
        raise ModelCacheError(
            f"{repo!r} is not a Hugging Face repository id; write it as 'organisation/name', "
            "for example 'mlx-community/Qwen3-0.6B-4bit'"
        )
    org, name = repo.split("/")
    return org, name


def _revision_dir(revision: str | None) -> str:
    text = revision or "main"
    if text in (".", "..") or not re.fullmatch(r"[A-Za-z0-9._/-]+", text):
        raise ModelCacheError(
            f"revision {revision!r} is not a valid branch, tag or commit; use a name such as "
            "'main', 'v1.0' or a 40-character commit sha"
        )
    return text.replace("/", "--")


def _at(revision: str | None) -> str:
    return f"@{revision}" if revision else ""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _explain(exc: Exception, repo: str, revision: str | None, endpoint: str | None) -> str:
    """One sentence for a failed download; never includes the token."""
    from huggingface_hub import errors

    where = endpoint or "the Hugging Face Hub"
    name = f"{repo}{_at(revision)}"
    if isinstance(exc, errors.GatedRepoError):
        return (
            f"model {name} is gated on {where}: accept its terms on the model page and set "
            "HF_TOKEN to a token of that account"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"model {repo} has no revision {revision!r} on {where}; check the branch, tag or sha"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return (
            f"model {repo} was not found on {where} (or it is private); check the repository "
            "id, or set HF_TOKEN if it is private"
        )
    if isinstance(exc, errors.LocalEntryNotFoundError | OSError | errors.HfHubHTTPError):
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            f"could not download model {name} from {where} ({detail}); check the network or "
            "HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only models already in the cache"
        )
    return f"could not download model {name} from {where}: {type(exc).__name__}: {exc}"
