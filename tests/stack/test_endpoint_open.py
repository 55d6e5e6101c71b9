"""Opening an ``--mlx-endpoint``: a real HTTP server (in a thread) that wants a key and lists
two models. The key is asked for in one sentence, several models need a name, the server is
named from its model list unless labelled, and the key never shows in the endpoint's repr."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_mlxstack.stack.endpoint import open_endpoint
from pytest_mlxstack.stack.errors import StackError

KEY = "sk-endpoint-test-0123456789"


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(
            {"data": [{"id": "a", "owned_by": "vllm-mlx"}, {"id": "b", "owned_by": "vllm-mlx"}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_key_a_model_and_the_server_name(url: str) -> None:
    with pytest.raises(StackError, match="refused the request with HTTP 401; give its key"):
        open_endpoint(url)
    with pytest.raises(StackError, match=r"lists 2 models \(a, b\); name one"):
        open_endpoint(url, api_key=KEY)

    endpoint = open_endpoint(url + "/v1/", api_key=KEY, model="b")

    assert (endpoint.base_url, endpoint.model, endpoint.server) == (f"{url}/v1", "b", "vllm-mlx")
    assert KEY not in repr(endpoint)
    assert endpoint.secrets == (KEY,)
    labelled = open_endpoint(url, api_key=KEY, model="a", label="m4-lab-vllm")
    assert labelled.server == "m4-lab-vllm"
