"""The ``--mlx-api-key`` value (or ``MLXSTACK_API_KEY``) is one of the run's secrets: it never
reaches the terminal, the junit XML, a traceback's locals, a matrix JSON or its HTML, even when
the server echoes it back in its answers and a user's test holds it in a local.

The server is a real HTTP server in this process standing in for a leaky one (no real server
repeats the key it was sent); the suites and the user's test reach it through the real openai
client over a real socket. The key has no secret shape (no ``sk-``, no ``Bearer`` before it),
so only knowing the value can hide it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_mlxstack.wiring.skips import skip_no_openai

pytestmark = [skip_no_openai]

KEY = "plainPass7Zq4WvLmN"  # nothing about it looks like a key
USER_TEST = """
import os

def test_mine(openai_client, mlx_endpoint):
    key = openai_client.api_key  # the user's own local holds it
    answer = openai_client.chat.completions.create(
        model=mlx_endpoint.model, messages=[{"role": "user", "content": "Say hello."}]
    )
    assert answer.choices[0].message.content == "no", (key, answer.choices[0].message.content)
"""


class LeakyHandler(BaseHTTPRequestHandler):
    """Repeats the caller's key in every answer: in the model list and in each completion."""

    def _key(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")

    def _send(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Seen-Key", self._key())
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "tiny-chat", "owned_by": self._key()}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        text = f"Hello! You sent {self._key()} to me."
        self._send(
            {
                "id": "leak",
                "object": "chat.completion",
                "created": 0,
                "model": "tiny-chat",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10},
            }
        )

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def leaky_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), LeakyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def every_artifact(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text("utf-8", errors="replace")
        for path in root.rglob("*")
        if path.is_file() and path.suffix in (".json", ".html", ".xml", ".log", ".txt", ".md")
    }


@pytest.mark.parametrize("given_by", ["option", "environment"])
def test_the_api_key_reaches_no_output_and_no_file(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    leaky_server: str,
    given_by: str,
) -> None:
    monkeypatch.setenv("MLXSTACK_HOME", str(pytester.path / "home"))
    pytester.makepyfile(test_user=USER_TEST)
    key_args = [f"--mlx-api-key={KEY}"] if given_by == "option" else []
    if given_by == "environment":
        monkeypatch.setenv("MLXSTACK_API_KEY", KEY)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-l",
        "--tb=long",
        f"--junitxml={pytester.path / 'junit.xml'}",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
        f"--mlx-endpoint={leaky_server}",
        *key_args,
        "--mlx-suites=smoke",
        "-k",
        "inference or test_mine",
        "test_user.py",
    )
    printed = result.stdout.str() + result.stderr.str()

    assert "test_user.py F" in printed  # the user's test failed, showing its locals
    assert re.search(r"key +(= |: )'\[REDACTED\]'", printed), printed
    assert "You sent [REDACTED] to me" in printed
    files = every_artifact(pytester.path)
    assert {"junit.xml", "matrices/latest.json", "matrices/latest.html"} <= set(files)
    assert "[REDACTED]" in files["matrices/latest.json"]  # the evidence was kept, redacted
    pieces = [KEY[:6], KEY[-6:]]  # nor a shortened repr's part of it
    leaks = [name for name, text in files.items() if any(p in text for p in [KEY, *pieces])]
    assert leaks == []
    assert not [piece for piece in [KEY, *pieces] if piece in printed], printed
