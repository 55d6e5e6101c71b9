"""A local stand-in for the Hugging Face Hub: a real threaded HTTP server on 127.0.0.1.

The Hub is out of reach in CI and in tests, so this answers the parts of its API that
``huggingface_hub`` calls for catalog checks and downloads, with the Hub's status codes and
``X-Error-Code`` headers, so that the real client raises its real exceptions:

- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info with siblings,
  sizes, ``gated``, ``private`` and ``sha``;
- ``GET /api/models/{repo}/refs`` and ``/api/models/{repo}/tree/{rev}``: refs and file listing;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: file metadata headers and real contents.

Access rules follow the real Hub: an anonymous request for a repository that does not exist
gets 401 ``RepoNotFound``, exactly like a private one; with a valid token both get 404. Gated
repositories show their metadata to everyone; their files answer 401 (anonymous) or 403 (token
without access) with ``GatedRepo``. An unknown token gets 401 "Invalid credentials".

Point ``huggingface_hub`` at it with ``endpoint=hub.url`` or ``HF_ENDPOINT``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

GatedMode = Literal["auto", "manual"]
_CHUNK = 1 << 20
_EPOCH = "2025-01-01T00:00:00.000Z"


@dataclass(frozen=True)
class HubFile:
    """A file of a local repository: real bytes, or only a declared size (served as zeros).

    Declared sizes let a test describe multi-gigabyte weights for size checks without
    holding them in memory; their contents are never meant to be loaded.
    """

    content: bytes | None = None
    size_only: int | None = None

    @property
    def size(self) -> int:
        return len(self.content) if self.content is not None else int(self.size_only or 0)

    @property
    def is_lfs(self) -> bool:
        return self.content is None or self.size > 10_000_000

    @property
    def digest(self) -> str:
        """sha256 of the contents (the LFS oid), or of the declared size for size-only files."""
        if self.content is not None:
            return hashlib.sha256(self.content).hexdigest()
        return hashlib.sha256(f"size-only:{self.size}".encode()).hexdigest()

    @property
    def git_oid(self) -> str:
        data = self.content if self.content is not None else self.digest.encode()
        return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()

    def chunks(self) -> Iterator[bytes]:
        if self.content is not None:
            yield self.content
            return
        left = self.size
        while left > 0:
            n = min(left, _CHUNK)
            yield bytes(n)
            left -= n


@dataclass
class HubRepo:
    """A model repository on the local Hub (one commit, any number of branch/tag names)."""

    repo_id: str
    files: dict[str, HubFile]
    gated: GatedMode | Literal[False] = False
    private: bool = False
    branches: tuple[str, ...] = ("main",)
    tags: tuple[str, ...] = ()
    allowed_tokens: frozenset[str] = frozenset()
    commit: str | None = None

    @property
    def sha(self) -> str:
        """The commit sha: the one given, else derived from the contents."""
        if self.commit is not None:
            return self.commit
        h = hashlib.sha1(self.repo_id.encode(), usedforsecurity=False)
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name].digest.encode())
        return h.hexdigest()

    def resolves(self, revision: str) -> bool:
        return revision in self.branches or revision in self.tags or revision == self.sha


@dataclass(frozen=True)
class HubRequest:
    """One request the local Hub answered (never the token itself)."""

    method: str
    path: str
    status: int
    authenticated: bool


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: float | None
    match: str
    error_code: str | None


@dataclass
class _State:
    repos: dict[str, HubRepo] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    failures: list[_Failure] = field(default_factory=list)
    requests: list[HubRequest] = field(default_factory=list)
    latency: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Server(ThreadingHTTPServer):
    # listen() runs in __init__, so the backlog must be a class attribute: with the default
    # of 5, a burst of concurrent connections overflows it and clients wait for SYN retries.
    request_queue_size = 256
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer is its own business; anything else is printed."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LocalHub:
    """A running local Hub. Use as a context manager, or ``start()``/``stop()``.

    ``latency`` (seconds) is added to every request; ``fail_next`` injects 429/5xx answers.
    """

    def __init__(self, *, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State(latency=latency)
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalHub:
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"state": self._state})
        server = _Server((self._host, self._port), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll
            name="mlxstack-local-hub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint to give ``huggingface_hub`` (``HF_ENDPOINT``), without a trailing slash."""
        if self._server is None:
            raise RuntimeError("the local Hub is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- content ---------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str | int | HubFile],
        *,
        gated: GatedMode | Literal[False] = False,
        private: bool = False,
        branches: Iterable[str] = ("main",),
        tags: Iterable[str] = (),
        allowed_tokens: Iterable[str] = (),
        commit: str | None = None,
    ) -> HubRepo:
        """Publish a repository. File values: bytes/str contents, or an int declaring a size.

        ``allowed_tokens`` may read a private repository or a gated one's files; they are
        registered as valid tokens. ``commit`` fixes the 40-hex commit sha (to match a pinned
        revision); by default it is derived from the contents.
        """
        built = {name: _as_file(value) for name, value in files.items()}
        repo = HubRepo(
            repo_id,
            built,
            gated,
            private,
            tuple(branches),
            tuple(tags),
            frozenset(allowed_tokens),
            commit,
        )
        with self._state.lock:
            self._state.repos[repo_id] = repo
            self._state.tokens.update(repo.allowed_tokens)
        return repo

    def add_token(self, token: str) -> None:
        """A valid token with access to no private or gated repository."""
        with self._state.lock:
            self._state.tokens.add(token)

    @property
    def repos(self) -> dict[str, HubRepo]:
        with self._state.lock:
            return dict(self._state.repos)

    # -- behaviour -------------------------------------------------------------------------
    @property
    def latency(self) -> float:
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        retry_after: float | None = None,
        match: str = "",
        error_code: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose path contains ``match`` with ``status``.

        ``error_code`` adds an ``X-Error-Code`` header (e.g. ``GatedRepo``), to imitate mirrors
        that answer differently from the Hub.
        """
        with self._state.lock:
            self._state.failures.append(_Failure(count, status, retry_after, match, error_code))

    @property
    def requests(self) -> list[HubRequest]:
        """Every request answered so far, in order."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests this Hub was answering at the same moment."""
        return self._state.max_in_flight

    def clear_requests(self) -> None:
        """Forget the request log and the in-flight high-water mark."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.max_in_flight = self._state.in_flight


def _as_file(value: bytes | str | int | HubFile) -> HubFile:
    if isinstance(value, HubFile):
        return value
    if isinstance(value, str):
        return HubFile(content=value.encode())
    if isinstance(value, bytes):
        return HubFile(content=value)
    return HubFile(size_only=value)


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; all shared state lives on the class attribute ``state``."""

    state: _State
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, a kept-alive
    # connection then waits for the client's delayed ACK (about 40 ms) on every response.
    disable_nagle_algorithm = True
    server_version = "mlxstack-local-hub"

    def log_message(self, format: str, *args: object) -> None:
        """Silent: requests are recorded in ``LocalHub.requests`` instead of stderr."""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # -- dispatch --------------------------------------------------------------------------
    def _serve(self, *, head: bool) -> None:
        state = self.state
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        if state.latency:
            time.sleep(state.latency)
        url = urlsplit(self.path)
        path = url.path
        token = self._bearer_token()
        try:
            if self._maybe_fail(path):
                return
            if token is not None and token not in state.tokens:
                raise _HubError(401, None, "Invalid credentials in Authorization header")
            if path.startswith("/api/models/"):
                self._api(path[len("/api/models/") :], parse_qs(url.query), token, head)
            elif "/resolve/" in path:
                self._resolve(path.lstrip("/"), token, head)
            else:
                raise _HubError(404, None, "Sorry, we can't find the page you are looking for.")
        except _HubError as err:
            self._error(err, head)
        finally:
            with state.lock:
                state.in_flight -= 1

    def send_response(self, code: int, message: str | None = None) -> None:
        """Record the request before any byte of its answer can reach the client.

        Recorded after the answer, a caller that reads ``LocalHub.requests`` as soon as its own
        call returns could miss the last request (the server thread had not appended it yet).
        """
        path = urlsplit(getattr(self, "path", "")).path
        authenticated = self._bearer_token() is not None
        request = HubRequest(str(getattr(self, "command", None)), path, code, authenticated)
        with self.state.lock:
            self.state.requests.append(request)
        super().send_response(code, message)

    def _bearer_token(self) -> str | None:
        """The request's bearer token; ``None`` without one or before the headers were read."""
        headers = getattr(self, "headers", None)  # absent when the request line was malformed
        auth = headers.get("Authorization", "") if headers is not None else ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _maybe_fail(self, path: str) -> bool:
        """Answer with an injected failure if one is pending for this path."""
        with self.state.lock:
            for failure in self.state.failures:
                if failure.remaining > 0 and failure.match in path:
                    failure.remaining -= 1
                    break
            else:
                return False
        extra = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
        if failure.error_code:
            extra["X-Error-Code"] = failure.error_code
        self._send(
            failure.status, {"error": "injected failure"}, extra, head=self.command == "HEAD"
        )
        return True

    def _repo(self, repo_id: str, token: str | None) -> HubRepo:
        """The repository if this caller may see its metadata; the Hub's answer otherwise."""
        with self.state.lock:
            repo = self.state.repos.get(repo_id)
        visible = repo is not None and (not repo.private or token in repo.allowed_tokens)
        if repo is None or not visible:
            # The Hub never tells a missing repository from one you may not see.
            status = 401 if token is None else 404
            raise _HubError(status, "RepoNotFound", "Repository not found")
        return repo

    def _revision(self, repo: HubRepo, revision: str) -> None:
        if not repo.resolves(revision):
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    # -- /api/models/... -------------------------------------------------------------------
    def _api(self, rest: str, query: dict[str, list[str]], token: str | None, head: bool) -> None:
        parts = rest.split("/")
        if len(parts) < 2:
            raise _HubError(404, None, "Not Found")
        repo = self._repo("/".join(parts[:2]), token)
        tail = parts[2:]
        if not tail:
            self._send(200, self._info(repo), head=head)
        elif tail[0] == "revision" and len(tail) >= 2:
            revision = unquote("/".join(tail[1:]))
            self._revision(repo, revision)
            self._send(200, self._info(repo), head=head)
        elif tail == ["refs"]:
            self._send(200, self._refs(repo), head=head)
        elif tail[0] == "tree" and len(tail) >= 2:
            self._revision(repo, unquote(tail[1]))
            self._send(200, self._tree(repo), head=head)
        else:
            raise _HubError(404, None, "Not Found")

    def _info(self, repo: HubRepo) -> dict[str, object]:
        return {
            "_id": repo.sha[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.sha,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "lastModified": _EPOCH,
            "createdAt": _EPOCH,
            "tags": ["mlx", "safetensors"],
            "library_name": "mlx",
            "downloads": 0,
            "likes": 0,
            "siblings": [self._sibling(name, f) for name, f in sorted(repo.files.items())],
            "usedStorage": sum(f.size for f in repo.files.values()),
        }

    @staticmethod
    def _sibling(name: str, f: HubFile) -> dict[str, object]:
        entry: dict[str, object] = {"rfilename": name, "size": f.size, "blobId": f.git_oid}
        if f.is_lfs:
            entry["lfs"] = {"size": f.size, "sha256": f.digest, "pointerSize": 134}
        return entry

    def _refs(self, repo: HubRepo) -> dict[str, object]:
        def ref(name: str, kind: str) -> dict[str, str]:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": repo.sha}

        return {
            "branches": [ref(name, "heads") for name in repo.branches],
            "tags": [ref(name, "tags") for name in repo.tags],
            "converts": [],
            "pullRequests": [],
        }

    def _tree(self, repo: HubRepo) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for name, f in sorted(repo.files.items()):
            item: dict[str, object] = {
                "type": "file",
                "oid": f.git_oid,
                "size": f.size,
                "path": name,
            }
            if f.is_lfs:
                item["lfs"] = {"oid": f.digest, "size": f.size, "pointerSize": 134}
            out.append(item)
        return out

    # -- /{repo}/resolve/{rev}/{file} ------------------------------------------------------
    def _resolve(self, rest: str, token: str | None, head: bool) -> None:
        before, _, after = rest.partition("/resolve/")
        repo = self._repo(unquote(before), token)
        revision, _, filename = after.partition("/")
        revision, filename = unquote(revision), unquote(filename)
        if repo.gated and token not in repo.allowed_tokens:
            status = 401 if token is None else 403
            raise _HubError(status, "GatedRepo", f"Access to model {repo.repo_id} is restricted.")
        self._revision(repo, revision)
        f = repo.files.get(filename)
        if f is None:
            raise _HubError(404, "EntryNotFound", f'{filename} does not exist on "{revision}"')
        etag = f.digest if f.is_lfs else f.git_oid
        headers = {
            "ETag": f'"{etag}"',
            "X-Repo-Commit": repo.sha,
            "Content-Length": str(f.size),
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        if f.is_lfs:
            headers["X-Linked-Size"] = str(f.size)
            headers["X-Linked-ETag"] = f'"{etag}"'
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            for chunk in f.chunks():
                self.wfile.write(chunk)

    # -- responses -------------------------------------------------------------------------
    def _error(self, err: _HubError, head: bool) -> None:
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(err.status, {"error": err.message}, headers, head=head)

    def _send(
        self,
        status: int,
        body: object,
        headers: Mapping[str, str] | None = None,
        *,
        head: bool,
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)  # the standard phrase, or none for a code such as 599
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)
