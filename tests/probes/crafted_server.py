"""A small OpenAI-compatible HTTP server that answers with crafted responses.

It stands in for failure modes a real vllm-mlx will not produce on demand (a 500, a hang, a
dropped connection, markup left in content, malformed tool arguments). The probes reach it
through the real ``openai`` client over a real socket; the request's ``model`` picks the
scenario, so one server serves every test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CITY = "Paris"
GOOD_ARGS = json.dumps({"location": CITY})


@dataclass
class Reply:
    """What the server does for one request."""

    status: int = 200
    body: Any = None  # JSON-able, or bytes sent verbatim
    chunks: list[dict[str, Any]] | None = None  # SSE events for a streamed reply
    raw_events: list[str] = field(default_factory=list)  # extra SSE lines, sent verbatim
    hang_s: float = 0.0  # wait this long (or until the server stops) before answering
    close_without_reply: bool = False
    cut_stream_after: int | None = None  # close mid-body after this many events
    headers: dict[str, str] = field(default_factory=dict)
    busy_when_concurrent: bool = False  # 503 while another such request is being answered


def completion(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    reasoning_key: str = "reasoning_content",
    tool_calls: list[tuple[str, str]] | None = None,
    finish: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message[reasoning_key] = reasoning
    if tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(tool_calls)
        ]
    return {
        "id": "chatcmpl-crafted",
        "object": "chat.completion",
        "created": 0,
        "model": "crafted",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-crafted",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "crafted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk() -> dict[str, Any]:
    return {
        "id": "chatcmpl-crafted",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "crafted",
        "choices": [],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def text_chunks(pieces: list[str], finish: str | None = "stop") -> list[dict[str, Any]]:
    events = [chunk({"role": "assistant"})]
    events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({}, finish))
    return [*events, usage_chunk()]


def tool_chunks(arguments_pieces: list[str], finish: str = "tool_calls") -> list[dict[str, Any]]:
    first = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "get_weather"}}
    events = [chunk({"role": "assistant", "tool_calls": [first]})]
    events += [
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        for piece in arguments_pieces
    ]
    return [*events, chunk({}, finish), usage_chunk()]


def _text(content: str, pieces: list[str] | None = None) -> Callable[[bool], Reply]:
    def reply(stream: bool) -> Reply:
        if stream:
            return Reply(chunks=text_chunks(pieces or [content]))
        return Reply(body=completion(content))

    return reply


def _reasoned(
    content: str | None,
    reasoning: str,
    *,
    key: str = "reasoning_content",
    finish: str | None = None,
    streamed_content: str | None = None,
    streamed_reasoning: str | None = None,
) -> Callable[[bool], Reply]:
    """Reasoning in its own field and a final answer, streamed (in pieces) or whole."""

    def reply(stream: bool) -> Reply:
        if not stream:
            return Reply(
                body=completion(content, reasoning=reasoning, reasoning_key=key, finish=finish)
            )
        think = streamed_reasoning if streamed_reasoning is not None else reasoning
        said = streamed_content if streamed_content is not None else (content or "")
        events = [chunk({"role": "assistant"})]
        events += [chunk({key: piece}) for piece in _halves(think)]
        events += [chunk({"content": piece}) for piece in _halves(said)]
        return Reply(chunks=[*events, chunk({}, finish or "stop"), usage_chunk()])

    return reply


def _halves(text: str) -> list[str]:
    half = len(text) // 2
    return [piece for piece in (text[:half], text[half:]) if piece]


def _by_request(answer: Callable[[dict[str, Any]], str]) -> Callable[[bool, dict[str, Any]], Reply]:
    """A plain answer computed from the request (its last user message)."""

    def reply(stream: bool, request: dict[str, Any]) -> Reply:
        return _text(answer(request))(stream)

    return reply


def _last_user(request: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")


def _first_user(request: dict[str, Any]) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "user")


def _count_reply(stream: bool, request: dict[str, Any], *, honour: bool) -> Reply:
    """ "1, 2, ..., 10", cut by ``stop`` and ``max_tokens`` (one token a number) as asked."""
    stop = request.get("stop")
    if isinstance(stop, str) and not honour:
        return Reply(status=422, body={"detail": [{"msg": "Input should be a valid list"}]})
    numbers = [str(i) for i in range(1, 11)]
    finish = "stop"
    limit = request.get("max_tokens")
    if isinstance(limit, int) and limit < len(numbers):
        numbers, finish = numbers[:limit], "length"
    text = ", ".join(numbers)
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    for sequence in stops:
        if sequence in text:
            cut = text.index(sequence)
            if honour:
                text = text[:cut]
            elif stream:
                text = text[: cut + len(sequence)]
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)] or [""]
    usage = {"prompt_tokens": 11, "completion_tokens": len(numbers), "total_tokens": 11}
    usage["total_tokens"] += len(numbers)
    if stream:
        events = text_chunks(pieces, finish)
        events[-1] = {**events[-1], "usage": usage}
        return Reply(chunks=events)
    return Reply(body={**completion(text, finish=finish), "usage": usage})


def _tool(arguments: str, *, finish: str | None = None, streamed: str | None = None) -> Any:
    def reply(stream: bool) -> Reply:
        if stream:
            text = streamed if streamed is not None else arguments
            half = len(text) // 2
            return Reply(chunks=tool_chunks([text[:half], text[half:]], finish or "tool_calls"))
        return Reply(body=completion(tool_calls=[("get_weather", arguments)], finish=finish))

    return reply


def _calls(calls: list[tuple[str, str]]) -> Reply:
    return Reply(body=completion(tool_calls=calls))


def _place(tool: str, city: str) -> tuple[str, str]:
    key = "city" if tool == "get_time" else "location"
    return tool, json.dumps({key: city})


def _capable(
    stream: bool, request: dict[str, Any], *, schema_status: int = 200, named: bool = True
) -> Reply:
    """What a capable model on a conforming server answers to the tool-use and structured
    probes (non-streamed). ``schema_status`` 500 is vllm-mlx 0.6.0 on Linux CPU (json_schema
    needs Metal); ``named=False`` ignores a named tool_choice."""
    question = _last_user(request)
    words = question.rstrip(".?").split()
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema" and schema_status == 500:
        return Reply(status=500, body=b"Internal Server Error")  # uvicorn's, as vllm-mlx's
    if response_format.get("type") == "json_schema" and schema_status != 200:
        return Reply(status=schema_status, body={"detail": "json_schema is not supported"})
    if response_format:
        city = words[3]  # "Give the city C and the number of letters ..."
        return Reply(body=completion(json.dumps({"city": city, "letters": len(city)})))
    if request["messages"][-1]["role"] == "tool":
        condition, degrees = request["messages"][-1]["content"].split(", ")
        city = _first_user(request).split()[-1][:-1]
        return _text(f"It is {condition} and {degrees.split()[0]} degrees Celsius in {city}.")(
            stream
        )
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and named:
        return _calls([_place(choice["function"]["name"], words[-2])])  # "flying to C tomorrow"
    if question.startswith("I am flying to"):
        return _calls([_place("get_weather", words[-2])])
    if question.startswith("What time"):
        return _calls([_place("get_time", words[-1])])
    if " and " in question:  # "What is the weather in A and B?"
        return _calls([_place("get_weather", words[-3]), _place("get_weather", words[-1])])
    if question.startswith("Count to"):
        return _text(", ".join(str(i) for i in range(1, int(words[-1]) + 1)))(stream)
    return _calls([_place("get_weather", words[-1])])


# Scenarios whose answer depends on what was asked (the probes draw it anew on every run).
ECHOES: dict[str, Callable[[bool, dict[str, Any]], Reply]] = {
    "capable": _capable,
    # vllm-mlx 0.6.0 on Linux CPU: json_schema answered with HTTP 500
    "no-metal": lambda stream, r: _capable(stream, r, schema_status=500),
    "refuses-schema": lambda stream, r: _capable(stream, r, schema_status=400),
    # a server that ignores a named tool_choice: the model calls what the question suggests
    "ignores-named": lambda stream, r: _capable(stream, r, named=False),
    # parallel question answered with the first city only; time question with get_weather
    "one-call": lambda stream, r: _calls([_place("get_weather", _last_user(r).split()[-3])]),
    "wrong-choice": lambda stream, r: _calls(
        [_place("get_weather", _last_user(r).split()[-1][:-1])]
    ),
    # response_format accepted, but the JSON is fenced (not constrained) or holds wrong values
    "json-fenced": lambda stream, r: _text(
        "```json\n" + json.dumps({"city": _last_user(r).split()[3], "letters": 5}) + "\n```"
    )(stream),
    "json-wrong": lambda stream, r: _text(
        json.dumps({"city": _last_user(r).split()[3], "letters": 99})
    )(stream),
    "json-extra-key": lambda stream, r: _text(
        json.dumps({"city": _last_user(r).split()[3], "letters": 5, "country": "?"})
    )(stream),
    "counts": _by_request(
        lambda r: ", ".join(str(i) for i in range(1, int(_last_user(r).split()[-1][:-1]) + 1))
    ),
    "recalls-name": _by_request(lambda r: f"Your name is {_first_user(r).split()[-1][:-1]}."),
    # calls get_weather for the city asked about ("What is the weather in Lima?")
    "good-tool": lambda stream, r: _tool(
        json.dumps({"location": _last_user(r).split()[-1].rstrip("?")})
    )(stream),
    # the turn after a tool result ("rainy, 12 celsius"), read back for the city asked about
    "reads-result": _capable,
    # the first report whatever the tool said (a model that learned one answer by heart)
    "always-sunny": _by_request(
        lambda r: f"It is sunny and 21 degrees Celsius in {_first_user(r).split()[-1][:-1]}."
    ),
    # a count that honours stop (list or string) and max_tokens, as a conforming server does
    "honours-parameters": lambda stream, r: _count_reply(stream, r, honour=True),
    # vllm-mlx 0.6.0: stop ignored whole, stop text left streamed, a string stop refused
    "ignores-stop": lambda stream, r: _count_reply(stream, r, honour=False),
    "always-alice": _by_request(lambda r: "Your name is Alice."),
    # a server that shows the tools whatever tool_choice says: the model calls when it sees them
    "tool-markup-when-shown": _by_request(
        lambda request: (
            f'<tool_call>{{"name": "get_weather", "arguments": {GOOD_ARGS}}}'
            if request.get("tools")
            else "I cannot check live weather, but I hope it is pleasant."
        )
    ),
    "names-everyone": _by_request(lambda r: "You are Alice, or Bob, or Chen, or Dana."),
}

SCENARIOS: dict[str, Callable[[bool], Reply]] = {
    # plain answers
    "prose": _text(f"I cannot check live weather, but I hope it is pleasant in {CITY}."),
    "no-usage": lambda stream: Reply(
        body={**completion("1, 2, 3"), "usage": None} if not stream else None,
        chunks=text_chunks(["1", ", 2", ", 3"])[:-1] if stream else None,
    ),
    "bad-total": lambda stream: (
        Reply(
            body={
                **completion("1, 2, 3"),
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 99},
            }
        )
        if not stream
        else Reply(chunks=text_chunks(["1", ", 2", ", 3"]))
    ),
    "hello": _text(
        "Hello! How can I help you today?", ["Hello", "! How can", " I help you today?"]
    ),
    "pirate": _text("Ahoy, matey! What be ye needing?"),
    "empty": _text(""),
    "count": _text("1, 2, 3, 4, 5", ["1", ", 2", ", 3", ", 4", ", 5"]),
    "count-one-chunk": _text("1, 2, 3, 4, 5", ["1, 2, 3, 4, 5"]),
    "gibberish": _text("the the of of and and", ["the the", " of of", " and and"]),
    "count-wrong": _text("1, 2, 3, 5, 4", ["1", ", 2", ", 3", ", 5", ", 4"]),
    "count-differs": _text("1, 2, 3, 4, 5", ["1", ", 2", ", 3", ", 4", ", 6"]),
    "count-as-reasoning": lambda stream: (
        Reply(
            chunks=[chunk({"role": "assistant"})]
            + [chunk({"reasoning_content": piece}) for piece in ["1", ", 2", ", 3", ", 4", ", 5"]]
            + [chunk({}, "stop"), usage_chunk()]
        )
        if stream
        else Reply(body=completion("1, 2, 3, 4, 5"))
    ),
    "length-empty": lambda stream: Reply(
        body=completion("", reasoning="hmm " * 50, finish="length")
    ),
    # tool calls
    "empty-args": _tool("{}"),
    "tool-markup": _text(f'<tool_call>{{"name": "get_weather", "arguments": {GOOD_ARGS}}}'),
    # cut at max_tokens: a whole call the parser missed, and a call cut short
    "tool-markup-length": lambda stream: Reply(
        body=completion(
            f'<tool_call>{{"name": "get_weather", "arguments": {GOOD_ARGS}}}</tool_call>',
            finish="length",
        )
    ),
    "call-cut-short": lambda stream: Reply(
        body=completion('<tool_call>\n{"name": "get_weather", "argu', finish="length")
    ),
    "broken-markup": _text('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Par'),
    "mistral-markup": _text(f'[TOOL_CALLS] [{{"name": "get_weather", "arguments": {GOOD_ARGS}}}]'),
    "json-markup": _text(f'{{"name": "get_weather", "arguments": {GOOD_ARGS}}}'),
    "bad-args": _tool('{"location": "Paris"'),
    "missing-key": _tool('{"city": "Paris"}'),
    "bad-enum": _tool('{"location": "Paris", "unit": "kelvin"}'),
    "wrong-city": _tool('{"location": "Tokyo"}'),
    "wrong-finish": _tool(GOOD_ARGS, finish="stop"),
    "wrong-tool": lambda stream: Reply(body=completion(tool_calls=[("get_time", "{}")])),
    "markup-in-reasoning": lambda stream: Reply(
        body=completion(None, reasoning=f"[TOOL_CALLS]get_weather[ARGS]{GOOD_ARGS}")
    ),
    "stream-args-differ": _tool(GOOD_ARGS, streamed='{"location": "Paris, France"}'),
    # thinking
    "thinks": _reasoned("The answer is 1081.", "23 * 47 = 1081."),
    "thinks-reasoning-key": _reasoned("The answer is 1081.", "23 * 47 = 1081.", key="reasoning"),
    "think-markup": _text("<think>23 * 47 = 1081.</think>The answer is 1081."),
    "empty-think-markup": _text("<think></think>1, 2, 3, 4, 5"),
    "unclosed-think": _text("<think>23 * 47 = 1081. The answer is 1081."),
    "unclosed-think-length": lambda stream: Reply(
        body=completion("<think>23 * 47 = 920 + 161 = ", finish="length")
    ),
    "no-think": _text("The answer is 1081."),
    "thinks-no-answer": _reasoned(None, "23 * 47 = ...", finish="length"),
    "thinks-wrong-answer": _reasoned("The answer is 1071.", "23 * 47 = 1071."),
    # unclosed <think>: whole, it stays in content; streamed, the parser takes it for reasoning
    "thinks-only-when-streamed": lambda stream: (
        _reasoned("The answer is 1081.", "23 * 47 = 1081.")(stream)
        if stream
        else _text("23 * 47 = 1081. The answer is 1081.")(stream)
    ),
    "thinks-answers-differ": _reasoned(
        "The answer is 1081.", "23 * 47 = 1081.", streamed_content="So: 1081, I think."
    ),
    # transport and HTTP failures
    "server-error": lambda stream: Reply(
        status=500, body={"error": {"message": "CUDA out of memory", "type": "server_error"}}
    ),
    "hang": lambda stream: Reply(hang_s=30.0, body=completion("too late")),
    "close": lambda stream: Reply(close_without_reply=True),
    "not-json": lambda stream: Reply(body=b"{this is not json"),
    "stream-error-event": lambda stream: Reply(
        chunks=text_chunks(["1", ", 2"])[:2],
        raw_events=['data: {"error": {"message": "generation crashed"}}'],
    ),
    "stream-cut": lambda stream: (
        Reply(chunks=text_chunks(["1", ", 2", ", 3"]), cut_stream_after=2)
        if stream
        else Reply(body=completion("1, 2, 3"))
    ),
    # unknown-model answers, for the errors probe
    "openai-400": lambda stream: Reply(
        status=400,
        body={"error": {"message": "Invalid model name", "type": "invalid_request_error"}},
    ),
    "detail-404": lambda stream: Reply(status=404, body={"detail": "Model 'x' not found"}),
    "answers-anything": _text("Hello from whatever model you asked for."),
    # the agents' protocols: an answer cut by its max_output_tokens / max_tokens
    "responses-cut": lambda stream: Reply(
        body={
            "id": "resp_crafted",
            "object": "response",
            "created_at": 0,
            "model": "crafted",
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [
                {
                    "type": "message",
                    "id": "msg_crafted",
                    "role": "assistant",
                    "status": "incomplete",
                    "content": [{"type": "output_text", "text": "1, 2", "annotations": []}],
                }
            ],
            "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
        }
    ),
    "messages-cut": lambda stream: Reply(
        body={
            "id": "msg_crafted",
            "type": "message",
            "role": "assistant",
            "model": "crafted",
            "content": [{"type": "text", "text": "1, 2"}],
            "stop_reason": "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 3},
        }
    ),
    # stack-level checks
    "routed-elsewhere": lambda stream: Reply(
        body=completion("Hello! How can I help you today?"),
        headers={"x-litellm-model-api-base": "http://127.0.0.1:9/v1"},
    ),
    "single-file": lambda stream: Reply(
        body=completion("1, 2, 3"), hang_s=0.2, busy_when_concurrent=True
    ),
    "counts-by-request": lambda stream: Reply(body=completion("1, 2, 3")),
}


class CraftedServer:
    """Serves ``SCENARIOS`` on 127.0.0.1; records the requests it received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.active = 0
        self.active_lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, {"detail": "Not Found"})
                    return
                models = [
                    {"id": name, "object": "model", "owned_by": "crafted"}
                    for name in [*SCENARIOS, *ECHOES]
                ]
                self._send(200, {"object": "list", "data": models})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                owner.requests.append(request)
                echo = ECHOES.get(str(request.get("model")))
                if echo is not None:
                    owner.serve(self, echo(bool(request.get("stream")), request))
                    return
                scenario = SCENARIOS.get(str(request.get("model")))
                if scenario is None:
                    self._send(404, {"detail": f"no scenario {request.get('model')!r}"})
                    return
                owner.serve(self, scenario(bool(request.get("stream"))))

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.handler = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def serve(self, handler: Any, reply: Reply) -> None:
        if reply.busy_when_concurrent:
            with self.active_lock:
                busy = self.active > 0
                self.active += 1
            try:
                if busy:
                    handler._send(503, {"detail": {"error": "text_generation_busy"}})
                    return
                self.stopping.wait(reply.hang_s)
                handler._send(reply.status, reply.body)
            finally:
                with self.active_lock:
                    self.active -= 1
            return
        if reply.hang_s:
            self.stopping.wait(reply.hang_s)
        if reply.close_without_reply:
            handler.close_connection = True
            return
        if reply.chunks is None:
            handler._send(reply.status, reply.body, reply.headers)
            return
        events = [f"data: {json.dumps(event)}" for event in reply.chunks] + reply.raw_events
        if reply.cut_stream_after is None:
            events.append("data: [DONE]")
        payload = [(event + "\n\n").encode() for event in events]
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        # A length promising the whole body: cutting the stream short is then a protocol error.
        handler.send_header("Content-Length", str(sum(len(p) for p in payload)))
        handler.end_headers()
        for index, data in enumerate(payload):
            if reply.cut_stream_after is not None and index >= reply.cut_stream_after:
                handler.close_connection = True
                return
            handler.wfile.write(data)
            handler.wfile.flush()
            time.sleep(0.005)

    def __enter__(self) -> CraftedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
