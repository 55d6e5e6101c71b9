"""Questions to the Hugging Face Hub about catalog sources, through ``huggingface_hub``.

For each repository: does it exist, is it gated (and how), is it private, which files and sizes
does it hold, does a pinned revision exist, and what chat template does it ship. The answers are
kept apart with care: the Hub answers ``RepoNotFound`` (401 to an anonymous request, 404 with a
token) both for a repository that does not exist and for a private one the caller may not read,
so that answer is reported as "private-or-missing", never as "missing" for sure and never as
"gated". Only the Hub's own ``gated`` field or a ``GatedRepo`` error code makes a repository
gated.

Requests run concurrently (a bounded thread pool), and 429 and any 5xx answer and dropped
connections are retried with exponential backoff that honours ``Retry-After``. Under pytest-xdist
``inspect_shared`` lets one process ask and the others read its answers from a file.
``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` are read when the client is built, not when
``huggingface_hub`` is imported, so a test can point the checks at a local Hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import httpx
from filelock import FileLock
from huggingface_hub import HfApi, get_session, get_token, hf_hub_url, hf_raise_for_status
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

from pytest_mlxstack.catalog import CatalogEntry
from pytest_mlxstack.catalog.checks import template_problems
from pytest_mlxstack.catalog.modelfiles import (
    chat_template_from,
    has_tokenizer,
    template_candidates,
    weight_files,
)
from pytest_mlxstack.process.atomic import write_json_atomic

DEFAULT_ENDPOINT = "https://huggingface.co"
REPORTS_FORMAT = 1  # version of the shared reports file written by ``inspect_shared``
SIZE_TOLERANCE = 0.25
_TRUE = {"1", "on", "yes", "true"}

T = TypeVar("T")


class Verdict(str, Enum):
    """What the Hub said about a repository."""

    EXISTS = "exists"
    GATED = "gated"
    # The Hub never says "does not exist" for sure: it answers RepoNotFound for a private
    # repository the caller may not read just as for a missing one.
    PRIVATE_OR_MISSING = "private-or-missing"
    UNREACHABLE = "unreachable"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def found(self) -> bool:
        return self in (Verdict.EXISTS, Verdict.GATED)


@dataclass(frozen=True)
class HubSettings:
    """Where and as whom to ask; ``from_env`` reads the environment at call time."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = field(default=None, repr=False)  # pytest -l shows reprs
    offline: bool = False
    timeout: float = 30.0

    @classmethod
    def from_env(cls) -> HubSettings:
        offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
        return cls(
            endpoint=(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            token=get_token(),
            offline=offline.strip().lower() in _TRUE,
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per request and the backoff between them (doubling, with jitter)."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        backoff = self.base_delay * 2 ** (attempt - 1)
        return float(min(backoff * (0.75 + random.random() / 2), self.max_delay))


def is_retryable(status: int | None) -> bool:
    """429 (rate limited) and every 5xx answer are worth another attempt."""
    return status is not None and (status == 429 or 500 <= status <= 599)


@dataclass(frozen=True)
class RepoReport:
    """Everything the Hub told us about one repository (at one pinned revision)."""

    repo: str
    revision: str | None
    verdict: Verdict
    detail: str
    endpoint: str
    gated_mode: str | None = None
    private: bool | None = None
    sha: str | None = None
    revision_found: bool | None = None
    files: dict[str, int | None] = field(default_factory=dict)
    template_file: str | None = None
    chat_template: str | None = None
    # Why the chat template was not read although the repository exists: the files are gated
    # and the token (if any) has no access. The template check is then not verified.
    template_unreadable: str | None = None
    # Reading the template failed for another reason (5xx, dropped connection, an odd answer):
    # what happened, and whether it was the Hub being unreachable or an error.
    template_error: str | None = None
    template_error_verdict: Verdict | None = None
    authenticated: bool = False  # whether the requests carried a token
    attempts: int = 1

    @property
    def weights_bytes(self) -> int | None:
        """Total size of the ``*.safetensors`` files, None if the Hub gave no sizes."""
        sizes = [self.files[name] for name in weight_files(self.files)]
        if not sizes or any(s is None for s in sizes):
            return None
        return sum(s for s in sizes if s is not None)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (``from_json`` reads them back)."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        if self.template_error_verdict is not None:
            data["template_error_verdict"] = self.template_error_verdict.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepoReport:
        values = dict(data)
        values["verdict"] = Verdict(values["verdict"])
        if values.get("template_error_verdict") is not None:
            values["template_error_verdict"] = Verdict(values["template_error_verdict"])
        return cls(**values)


class _Attempts:
    """Counts requests made for one report, retries included."""

    def __init__(self) -> None:
        self.count = 0


class HubClient:
    """Inspects repositories on the Hub (or on ``HF_ENDPOINT``), concurrently and with retries."""

    def __init__(
        self,
        settings: HubSettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        workers: int = 32,
    ) -> None:
        self.settings = settings or HubSettings.from_env()
        self.retry = retry or RetryPolicy()
        self.workers = max(1, workers)
        self._api = HfApi(endpoint=self.settings.endpoint, token=self.settings.token or False)

    # -- public ----------------------------------------------------------------------------
    def inspect_many(
        self, targets: Iterable[tuple[str, str | None]]
    ) -> dict[tuple[str, str | None], RepoReport]:
        """Reports for every (repo, revision), asked at most ``workers`` at a time."""
        unique = list(dict.fromkeys(targets))
        if not unique:
            return {}
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(unique)), thread_name_prefix="mlxstack-hub"
        ) as pool:
            reports = pool.map(lambda t: self.inspect(*t), unique)
            return dict(zip(unique, reports, strict=True))

    def inspect(self, repo: str, revision: str | None = None) -> RepoReport:
        """One repository's report; never raises for what the Hub answers."""
        attempts = _Attempts()
        endpoint = self.settings.endpoint
        authenticated = self.settings.token is not None
        if self.settings.offline:
            return RepoReport(
                repo, revision, Verdict.SKIPPED, "HF_HUB_OFFLINE is set", endpoint, attempts=0
            )
        revision_found: bool | None = None
        try:
            try:
                info = self._with_retries(attempts, self._info, repo, revision)
                revision_found = True if revision is not None else None
            except RevisionNotFoundError:
                revision_found = False
                info = self._with_retries(attempts, self._info, repo, None)
        except Exception as exc:  # every failure becomes a verdict: one failing test, no crash
            verdict, detail = self._classify(exc)
            return RepoReport(
                repo,
                revision,
                verdict,
                detail,
                endpoint,
                authenticated=authenticated,
                attempts=attempts.count,
            )
        files = {s.rfilename: s.size for s in (info.siblings or [])}
        gated = info.gated if info.gated in ("auto", "manual") else None
        report = RepoReport(
            repo,
            revision,
            Verdict.GATED if gated else Verdict.EXISTS,
            f"HTTP 200 (gated: {gated})" if gated else "HTTP 200",
            endpoint,
            gated_mode=gated,
            private=bool(info.private),
            sha=info.sha,
            revision_found=revision_found,
            files=files,
            authenticated=authenticated,
            attempts=attempts.count,
        )
        if revision_found is False:
            return report
        return self._with_template(report, attempts)

    # -- requests --------------------------------------------------------------------------
    def _info(self, repo: str, revision: str | None) -> Any:
        return self._api.model_info(
            repo, revision=revision, files_metadata=True, timeout=self.settings.timeout
        )

    def _fetch_text(self, repo: str, filename: str, revision: str) -> str:
        url = hf_hub_url(repo, filename, revision=revision, endpoint=self.settings.endpoint)
        headers = build_hf_headers(token=self.settings.token or False)
        response = get_session().get(url, headers=headers, timeout=self.settings.timeout)
        hf_raise_for_status(response)
        return response.text

    def _with_template(self, report: RepoReport, attempts: _Attempts) -> RepoReport:
        """Read the chat template from the best file that holds one."""
        revision = report.sha or report.revision or "main"
        for filename in template_candidates(report.files):
            try:
                text = self._with_retries(
                    attempts, self._fetch_text, report.repo, filename, revision
                )
            except GatedRepoError:
                who = "this token has no access" if report.authenticated else "no token was sent"
                return replace(
                    report,
                    template_unreadable=f"its files are gated and {who}",
                    attempts=attempts.count,
                )
            except Exception as exc:  # the template was not checked: say so, never pass
                verdict, detail = self._classify(exc)
                return replace(
                    report,
                    template_error=f"reading {filename} failed: {detail}",
                    template_error_verdict=verdict,
                    attempts=attempts.count,
                )
            template = chat_template_from(filename, text)
            if template is not None:
                return replace(
                    report,
                    template_file=filename,
                    chat_template=template,
                    attempts=attempts.count,
                )
        return replace(report, attempts=attempts.count)

    def _with_retries(self, attempts: _Attempts, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)``, retried on 429, any 5xx and transport errors, with backoff."""
        while True:
            attempts.count += 1
            try:
                return call(*args)
            except HfHubHTTPError as exc:
                response = exc.response
                status = response.status_code if response is not None else None
                if not is_retryable(status) or attempts.count >= self.retry.attempts:
                    raise
                retry_after = _retry_after(response.headers) if response is not None else None
            except httpx.TransportError:
                if attempts.count >= self.retry.attempts:
                    raise
                retry_after = None
            self.retry.sleep(self.retry.delay(attempts.count, retry_after))

    def _classify(self, exc: Exception) -> tuple[Verdict, str]:
        """Turn what ``huggingface_hub`` raised into a verdict and a one-line detail.

        Only a ``GatedRepo`` error code means gated; ``RepoNotFound`` never does, and it never
        proves that a repository does not exist either (a private one answers the same).
        """
        anonymous = self.settings.token is None
        if isinstance(exc, OfflineModeIsEnabled):
            return Verdict.SKIPPED, "huggingface_hub is in offline mode (HF_HUB_OFFLINE)"
        if isinstance(exc, httpx.TransportError):
            return Verdict.UNREACHABLE, f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, HfHubHTTPError):
            return Verdict.ERROR, f"{type(exc).__name__}: {exc}"
        response = exc.response
        status = response.status_code if response is not None else 0
        code = response.headers.get("X-Error-Code") if response is not None else None
        message = response.headers.get("X-Error-Message") if response is not None else None
        answer = f"HTTP {status}" + (f" {code}" if code else "")
        # GatedRepoError subclasses RepositoryNotFoundError: test it first.
        if isinstance(exc, GatedRepoError):
            return Verdict.GATED, answer
        if isinstance(exc, DisabledRepoError):
            return Verdict.ERROR, f"{answer}: the repository is disabled"
        if isinstance(exc, RepositoryNotFoundError):
            if status == 401 and anonymous:
                return Verdict.PRIVATE_OR_MISSING, (
                    f"{answer} to an anonymous request, which the Hub answers for missing and "
                    "private repositories alike"
                )
            if status == 401:
                return Verdict.PRIVATE_OR_MISSING, f"{answer} (the token cannot see it)"
            return Verdict.PRIVATE_OR_MISSING, f"{answer}" + (
                "" if anonymous else " with a valid token"
            )
        if status == 401 and not anonymous:
            return Verdict.ERROR, f"{answer}: the Hub rejected the token ({message or 'no reason'})"
        if is_retryable(status):
            return Verdict.UNREACHABLE, f"{answer} after {self.retry.attempts} attempts"
        return Verdict.ERROR, answer + (f": {message}" if message else "")


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def hub_problems(entry: CatalogEntry, quant: str, report: RepoReport) -> list[str]:
    """What is wrong with one Hub source given the Hub's report; empty when all is well."""
    source = entry.sources[quant]
    repo = report.repo
    where = f"sources.{quant}.hf_repo {repo}"
    if report.verdict is Verdict.PRIVATE_OR_MISSING and report.authenticated:
        return [
            f"{where} does not exist on the Hub, or is private and this token has no access "
            f"({report.detail}); correct hf_repo, or use a token of an account that can read it"
        ]
    if report.verdict is Verdict.PRIVATE_OR_MISSING and entry.private:
        return [
            f"{where} is missing or private ({report.detail}); the entry says private: true, "
            "so set HF_TOKEN to a token of an account that can read it"
        ]
    if report.verdict is Verdict.PRIVATE_OR_MISSING:
        return [
            f"{where} is missing or private ({report.detail}); correct hf_repo, or set HF_TOKEN "
            "to an account that can see it to tell which"
        ]
    if report.verdict is Verdict.UNREACHABLE:
        return [
            f"the Hub at {report.endpoint} could not be asked about {repo} ({report.detail}); "
            "retry later, or set HF_HUB_OFFLINE=1 to skip the Hub checks"
        ]
    if report.verdict is Verdict.ERROR:
        return [f"the Hub could not tell about {where} ({report.detail}); check HF_TOKEN/hf_repo"]
    if report.verdict is Verdict.SKIPPED:
        return []
    if report.verdict is Verdict.GATED and report.sha is None:
        # A GatedRepo answer to the metadata request itself: nothing else can be checked.
        if entry.gated:
            return []
        return [f"{where} is gated on the Hub ({report.detail}) but the entry says gated: false; "
                "set gated: true"]  # fmt: skip
    problems: list[str] = []
    if report.revision_found is False:
        return [
            f"sources.{quant}.revision {source.revision} does not exist in {repo}; pin an "
            "existing commit sha, branch or tag"
        ]
    hub_gated = report.gated_mode is not None
    if entry.gated != hub_gated:
        problems.append(
            f"{where} is gated ({report.gated_mode} approval) on the Hub but the entry says "
            "gated: false; set gated: true"
            if hub_gated
            else f"{where} is not gated on the Hub but the entry says gated: true; set gated: false"
        )
    if report.private is not None and entry.private != report.private:
        problems.append(
            f"{where} is private on the Hub (this token can read it; users without access "
            "cannot download it) but the entry says private: false; set private: true, or "
            "publish the repository"
            if report.private
            else f"{where} is public on the Hub but the entry says private: true; set "
            "private: false"
        )
    names = list(report.files)
    if not weight_files(names):
        problems.append(f"{where} holds no *.safetensors weights; point hf_repo at an MLX model")
    if "config.json" not in report.files:
        problems.append(f"{where} has no config.json; point hf_repo at a complete model")
    if not has_tokenizer(names):
        problems.append(f"{where} has no tokenizer files; point hf_repo at a complete model")
    if report.template_error is not None:
        problems.append(_template_error(report, where))
    elif report.template_unreadable is None:
        problems += template_problems(entry, report.chat_template, where)
    problems += _size_problems(entry, quant, report, where)
    return problems


def hub_unverified(entry: CatalogEntry, quant: str, report: RepoReport) -> list[str]:
    """Checks the Hub did not let us make (gated files without access), each with its fix.

    Only meaningful when ``hub_problems`` found nothing: a check left out is then reported
    (pytest skips the test with this reason) instead of passing silently.
    """
    repo = report.repo
    fix = "set HF_TOKEN to a token with access to check it"
    if report.verdict is Verdict.GATED and report.sha is None and entry.gated:
        return [f"contents of {repo} not verified: the Hub answered {report.detail}; {fix}"]
    if report.verdict.found and report.template_unreadable is not None:
        return [
            f"chat template not verified: {repo} is gated ({report.template_unreadable}); {fix}"
        ]
    return []


def _template_error(report: RepoReport, where: str) -> str:
    what = (
        f"the chat template of {where} could not be read from the Hub at {report.endpoint} "
        f"({report.template_error}), so it was not checked"
    )
    if report.template_error_verdict is Verdict.UNREACHABLE:
        return f"{what}; retry later, or set HF_HUB_OFFLINE=1 to skip the Hub checks"
    return f"{what}; check hf_repo, its files and HF_TOKEN"


def _size_problems(entry: CatalogEntry, quant: str, report: RepoReport, where: str) -> list[str]:
    declared = entry.sources[quant].disk_size_gb
    total = report.weights_bytes
    if declared is None or not total:
        return []
    on_hub = total / 1e9
    if abs(on_hub - declared) <= SIZE_TOLERANCE * declared:
        return []
    return [
        f"{where} weights take {on_hub:.2f} GB on the Hub but sources.{quant}.disk_size_gb says "
        f"{declared:g} (more than {SIZE_TOLERANCE:.0%} apart); set disk_size_gb to {on_hub:.2f}"
    ]


def inspect_shared(
    client: HubClient, targets: Iterable[tuple[str, str | None]], directory: Path
) -> dict[tuple[str, str | None], RepoReport]:
    """``client.inspect_many(targets)``, asked once for all processes sharing ``directory``.

    pytest-xdist workers each collect every test, so each would ask the Hub about every
    repository. Here the first process to take the lock asks about all of them and writes the
    reports (atomically); the others wait for the lock and read them, asking only about
    targets the file lacks. The file is keyed by endpoint and token, so different
    credentials never share answers.
    """
    wanted = list(dict.fromkeys(targets))
    settings = client.settings
    token_digest = hashlib.sha256((settings.token or "").encode()).hexdigest()
    key = hashlib.sha256(f"{settings.endpoint}\0{token_digest}".encode()).hexdigest()[:16]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"hub-reports-{key}.json"
    with FileLock(str(directory / f"hub-reports-{key}.lock")):
        known = _read_reports(path)
        missing = [t for t in wanted if t not in known]
        if missing:
            known.update(client.inspect_many(missing))
            rows = [[repo, rev, report.to_json()] for (repo, rev), report in known.items()]
            write_json_atomic(path, {"format": REPORTS_FORMAT, "reports": rows})
    return {t: known[t] for t in wanted}


def _read_reports(path: Path) -> dict[tuple[str, str | None], RepoReport]:
    """Reports another process wrote; empty when there are none or they cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != REPORTS_FORMAT:
            return {}
        return {(repo, rev): RepoReport.from_json(report) for repo, rev, report in data["reports"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
