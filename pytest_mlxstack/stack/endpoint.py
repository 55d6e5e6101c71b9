"""A server the plugin did not start and never stops: ``--mlx-endpoint URL``.

``open_endpoint`` checks the URL, finds the model (given, or the only one ``/v1/models``
lists) and names the server from its answers (``owned_by`` in the model list, the HTTP
``Server`` header) unless the user labelled it. Nothing here starts, signals or stops a
process: the endpoint is only ever asked HTTP questions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx

from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.text.secrets import Secret
from pytest_mlxstack.text.terminal import one_line

if TYPE_CHECKING:
    from openai import OpenAI

ENDPOINT_TIMEOUT_S = 10.0
UNKNOWN_SERVER = "unknown"
NO_KEY = "unused"  # the openai client insists on some key
# ``owned_by`` of /v1/models -> the server it names.
OWNERS = {"vllm-mlx": "vllm-mlx", "vllm": "vllm", "llamacpp": "llama.cpp", "litellm": "litellm"}


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server somebody else runs. ``base_url`` ends in ``/v1``."""

    base_url: str
    model: str
    server: str  # detected or labelled: vllm-mlx, mlx-lm, llama.cpp, ..., unknown
    api_key: Secret | None = field(default=None, repr=False)

    def client(self, *, timeout: float = 120.0) -> OpenAI:
        """The real ``openai.OpenAI`` client for it (no retries)."""
        from openai import OpenAI

        key = self.api_key.reveal() if self.api_key else NO_KEY
        return OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=timeout)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key.reveal(),) if self.api_key else ()


def base_url_of(url: str, *, where: str = "--mlx-endpoint") -> str:
    """``http://host:port`` or ``.../v1`` as the ``.../v1`` base URL; one sentence if not."""
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise StackError(
            f"{where}: {one_line(url)!r} is not an http(s) URL; give the server's address, "
            "e.g. http://127.0.0.1:8000/v1"
        )
    path = parsed.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parsed.scheme}://{parsed.netloc}{path}"


def open_endpoint(
    url: str,
    *,
    model: str | None = None,
    api_key: str | None = None,
    label: str | None = None,
    where: str = "--mlx-endpoint",
) -> Endpoint:
    """Ask the server for its model list once; ``StackError`` (one sentence) when it does not
    answer, refuses the key, or lists several models and none was chosen."""
    base = base_url_of(url, where=where)
    key = Secret(api_key) if api_key else None
    del api_key  # pytest -l would print the plain string
    headers = {"Authorization": f"Bearer {key.reveal()}"} if key else {}
    try:
        answer = httpx.get(f"{base}/models", headers=headers, timeout=ENDPOINT_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise StackError(
            f"{where}: {base} did not answer ({type(exc).__name__}); start the server or fix "
            "the URL"
        ) from None
    if answer.status_code in (401, 403):
        raise StackError(
            f"{where}: {base} refused the request with HTTP {answer.status_code}; give its key "
            "with --mlx-api-key or MLXSTACK_API_KEY"
        )
    listed = _listed(answer)
    if model is None:
        if len(listed) != 1:
            names = ", ".join(one_line(str(m.get("id"))) for m in listed[:10]) or "none"
            raise StackError(
                f"{where}: {base} lists {len(listed)} models ({names}); name one with "
                "--mlx-endpoint-model"
            )
        model = str(listed[0].get("id"))
    server = label or detect_server(listed, answer.headers.get("server", ""))
    return Endpoint(base, model, server, key)


def detect_server(listed: list[dict[str, Any]], server_header: str) -> str:
    """The server's kind from what it said: the model list's ``owned_by``, else the HTTP
    ``Server`` header (mlx_lm.server answers from Python's ``BaseHTTP`` server)."""
    for entry in listed:
        owner = str(entry.get("owned_by", ""))
        if owner in OWNERS:
            return OWNERS[owner]
    if server_header.startswith("BaseHTTP/"):
        return "mlx-lm"
    return UNKNOWN_SERVER


def _listed(answer: httpx.Response) -> list[dict[str, Any]]:
    try:
        data = answer.json()
    except ValueError:
        return []
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return []
    return [m for m in models if isinstance(m, dict) and m.get("id")]
