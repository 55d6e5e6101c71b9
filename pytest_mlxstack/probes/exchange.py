"""One chat request through the real ``openai`` client, with the evidence and, when it goes
wrong at the transport or HTTP level, whose fault it is.

The probes judge *answers*; this module judges *exchanges*: connection refused or reset
(``server_down``), 5xx or an error event mid-stream (``server_error``), no answer in time
(``timeout``), a 4xx for a well-formed request or a client-side exception (``client``).
Retries are switched off so that a failure shows instead of being papered over.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, cast

import openai
from openai import OpenAI, Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from pytest_mlxstack.matrix.verdicts import Attribution

EXCERPT_CHARS = 600
DEFAULT_TIMEOUT_S = 120.0


def _http_libraries() -> list[ModuleType]:
    """The HTTP libraries under the clients: openai and anthropic now use ``httpx2``, older
    releases ``httpx``; an error from a stream's body comes from whichever is underneath."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            continue
    return found


_LIBRARIES = _http_libraries()
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TimeoutException for m in _LIBRARIES)
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TransportError for m in _LIBRARIES)
BODY_UNREADABLE: tuple[type[BaseException], ...] = tuple(
    error for m in _LIBRARIES for error in (m.ResponseNotRead, m.StreamError)
)


def excerpt(text: object, limit: int = EXCERPT_CHARS) -> str | None:
    """Untrusted text, cut to a readable length for evidence."""
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


@dataclass
class Failure:
    """Why an exchange produced no usable answer."""

    attribution: Attribution
    reason: str
    status: int | None = None
    body: str | None = None  # the full error body; evidence shows an excerpt


@dataclass
class Exchange:
    """What was sent, what came back (or why nothing usable did), and how long it took."""

    request: dict[str, Any]
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    completion: ChatCompletion | None = None
    chunks: list[ChatCompletionChunk] = field(default_factory=list)
    failure: Failure | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


def request_excerpt(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> dict[str, Any]:
    """The request as evidence: every message, tool names instead of full schemas."""
    shown: dict[str, Any] = {
        "model": model,
        "messages": [
            {**message, "content": excerpt(message.get("content"))}
            if message.get("content") is not None
            else dict(message)
            for message in messages
        ],
    }
    for key, value in params.items():
        if key == "tools":
            shown["tools"] = [tool.get("function", {}).get("name") for tool in value]
        else:
            shown[key] = value
    return shown


def chat(
    client: OpenAI,
    model: str,
    messages: list[dict[str, Any]],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    stream: bool = False,
    **params: Any,
) -> Exchange:
    """Send one chat completion (greedy unless ``temperature`` is given) and record it.

    For ``stream=True`` the whole stream is read, within ``timeout`` overall.
    """
    params.setdefault("temperature", 0)
    if stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    exchange = Exchange(request=request_excerpt(model, messages, params))
    quiet = client.with_options(timeout=timeout, max_retries=0)
    started = time.monotonic()
    try:
        raw = quiet.chat.completions.with_raw_response.create(
            model=model,
            messages=cast("list[ChatCompletionMessageParam]", messages),
            **params,
        )
        exchange.status = raw.status_code
        exchange.headers = {k.lower(): v for k, v in raw.headers.items()}
        parsed = raw.parse()
        if stream:
            deadline = started + timeout
            chunks = cast("Stream[ChatCompletionChunk]", parsed)
            try:
                for chunk in chunks:
                    exchange.chunks.append(chunk)
                    if time.monotonic() > deadline:
                        exchange.failure = Failure(
                            Attribution.TIMEOUT,
                            f"the stream was still going after {timeout:g} s "
                            f"({len(exchange.chunks)} chunks)",
                            status=exchange.status,
                        )
                        break
            finally:
                chunks.close()
        elif isinstance(parsed, ChatCompletion):
            exchange.completion = parsed
        else:
            exchange.failure = Failure(
                Attribution.CLIENT,
                f"the client could not read the answer as a chat completion "
                f"(got {type(parsed).__name__})",
                status=exchange.status,
                body=str(parsed),
            )
    except Exception as exc:  # every way an exchange can fail ends up attributed
        exchange.failure = classify(exc, timeout=timeout)
        if exchange.failure.status is not None:
            exchange.status = exchange.failure.status
    exchange.duration_s = round(time.monotonic() - started, 3)
    return exchange


def classify(exc: BaseException, *, timeout: float) -> Failure:
    """Whose fault an exception from the client (or from the stream under it) is."""
    if isinstance(exc, (openai.APITimeoutError, *TIMEOUT_ERRORS)):
        return Failure(Attribution.TIMEOUT, f"no answer within {timeout:g} s")
    if isinstance(exc, (openai.APIConnectionError, *TRANSPORT_ERRORS)):
        cause = exc.__cause__ or exc.__context__ or exc
        return Failure(
            Attribution.SERVER_DOWN,
            f"the connection failed: {type(cause).__name__}: {excerpt(cause, 200)} "
            f"(server down, crashed or closed the connection)",
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = error_body(exc)
        if status >= 500:
            return Failure(
                Attribution.SERVER_ERROR,
                f"the server answered HTTP {status}: {excerpt(body, 300)}",
                status=status,
                body=body,
            )
        return Failure(
            Attribution.CLIENT,
            f"the server refused the request with HTTP {status}: {excerpt(body, 300)} "
            f"(check the served model name, the key and the request)",
            status=status,
            body=body,
        )
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIResponseValidationError):
        return Failure(
            Attribution.SERVER_ERROR,
            f"the server sent an error instead of an answer: {excerpt(exc.message, 300)}",
            body=json.dumps(exc.body, default=str) if exc.body is not None else None,
        )
    return Failure(
        Attribution.CLIENT,
        f"the openai client could not handle the answer: {type(exc).__name__}: {excerpt(exc, 300)}",
    )


class _Response(Protocol):
    @property
    def text(self) -> str: ...


class StatusError(Protocol):
    """An HTTP error of the ``openai`` or the ``anthropic`` client (same two attributes)."""

    @property
    def response(self) -> _Response: ...

    @property
    def body(self) -> object: ...


def error_body(exc: StatusError) -> str:
    """The error answer's text: the response as sent, else the body the client parsed."""
    try:
        return exc.response.text
    except BODY_UNREADABLE:
        return json.dumps(exc.body, default=str)
