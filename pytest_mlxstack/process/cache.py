"""A persistent model cache: Hugging Face repositories downloaded once, reused across runs.

Each ``(repo, revision)`` lives in ``<root>/<org>--<name>/<revision>/``, a plain folder that
``vllm-mlx serve`` can load. A download runs under a file lock per repository, so several xdist
workers asking for the same model at once download it once. A completion marker is written
atomically after ``snapshot_download`` returns, so a download interrupted earlier (killed
worker, lost network) is noticed and resumed instead of being served half-written.

With ``on_progress``, a download says what it does in lines meant for a terminal: when it
starts, then at most every ``progress_interval`` seconds the bytes on disk so far and the total
the Hub lists, and when it ends (``huggingface_hub``'s own progress bars are usually captured).

``HF_TOKEN``, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read at each call, not at import.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.process.atomic import write_json_atomic
from pytest_mlxstack.process.paths import default_cache_dir

COMPLETE_MARKER = ".mlxstack-complete.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRUE = {"1", "true", "yes", "on"}
PROGRESS_INTERVAL_S = 2.0
_TOTAL_TIMEOUT_S = 10.0
ProgressCallback = Callable[[str], None]


class ModelCacheError(MlxStackError, RuntimeError):
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
        on_progress: ProgressCallback | None = None,
        progress_interval: float = PROGRESS_INTERVAL_S,
    ) -> Path:
        """The local folder of ``repo`` at ``revision``, downloading it first if needed.

        A completed download is returned without asking the Hub (so offline runs work) unless
        ``refresh`` is true. With ``HF_HUB_OFFLINE`` set, a model that is not complete in the
        cache is an error rather than a download attempt. ``on_progress`` gets one line when a
        download starts, one at most every ``progress_interval`` seconds while it runs (bytes
        so far, of the total when the Hub lists the sizes) and one when it is done; it is
        called from this thread, never while nothing is downloaded.
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
                if on_progress is None:
                    self._download(repo, revision, target, allow_patterns)
                else:
                    self._download_reporting(
                        repo, revision, target, allow_patterns, on_progress, progress_interval
                    )
        except Timeout:
            raise ModelCacheError(
                f"model {repo}{_at(revision)}: another process has held the download lock "
                f"{lock_path} for over {self.lock_timeout:g} s; wait for it or remove a stale "
                "lock file"
            ) from None
        return target

    def _download_reporting(
        self,
        repo: str,
        revision: str | None,
        target: Path,
        allow_patterns: list[str] | None,
        on_progress: ProgressCallback,
        interval: float,
    ) -> None:
        """``_download`` in a helper thread while this one reports the bytes on disk."""
        on_progress(f"downloading {repo}{_at(revision) or '@main'} into {self.root}")
        begun = time.monotonic()
        failure: list[BaseException] = []

        def download() -> None:
            try:
                self._download(repo, revision, target, allow_patterns)
            except BaseException as exc:  # handed to the waiting thread, which raises it
                failure.append(exc)

        # A daemon: an interrupted run (Ctrl-C here) does not wait for the download to end.
        worker = threading.Thread(target=download, name=f"mlxstack-pull {repo}", daemon=True)
        worker.start()
        total = _listed_size(repo, revision, allow_patterns)  # meanwhile; None if unknown
        reported = -1
        while True:
            worker.join(max(interval, 0.01))
            if not worker.is_alive():
                break
            done = _bytes_in(target)
            if done != reported:  # a stalled download does not repeat itself
                on_progress(f"downloading {repo}: {_size(done)}{_of(done, total)}")
                reported = done
        if failure:
            raise failure[0]
        on_progress(
            f"downloaded {repo}: {_size(_bytes_in(target))} in {time.monotonic() - begun:.1f} s"
        )

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


def _listed_size(repo: str, revision: str | None, allow_patterns: list[str] | None) -> int | None:
    """Bytes of the files a download of ``repo`` fetches, as the Hub lists them; ``None`` when
    the Hub does not answer (the download itself then says why)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None).model_info(
            repo,
            revision=revision,
            files_metadata=True,
            timeout=_TOTAL_TIMEOUT_S,
            token=os.environ.get("HF_TOKEN") or None,
        )
    except Exception:
        return None
    sizes = [s.size for s in info.siblings or [] if _allowed(s.rfilename, allow_patterns)]
    if not sizes or any(size is None for size in sizes):
        return None
    return sum(size or 0 for size in sizes)


def _allowed(name: str, patterns: list[str] | None) -> bool:
    """``allow_patterns`` as ``snapshot_download`` reads them (fnmatch; ``dir/`` is ``dir/*``)."""
    if patterns is None:
        return True
    return any(fnmatch.fnmatch(name, p + "*" if p.endswith("/") else p) for p in patterns)


def _bytes_in(folder: Path) -> int:
    """Bytes under ``folder``: finished files and ``huggingface_hub``'s partial ones (under
    ``.cache/huggingface/``), without the completion marker."""
    total = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            if name == COMPLETE_MARKER:
                continue
            with contextlib.suppress(OSError):  # renamed or removed meanwhile
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} GB" if unit == "GB" else f"{n / scale:.0f} {unit}"
    return f"{n} B"


def _of(done: int, total: int | None) -> str:
    if not total:
        return " so far"
    return f" of {_size(total)} ({min(100, done * 100 // total)}%)"


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
