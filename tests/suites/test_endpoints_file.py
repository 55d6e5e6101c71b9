"""``--mlx-endpoints FILE``: the smoke and harness suites against several servers the plugin did
not start. Two real mlx_lm.server processes, started here by pid, both get their rows (named
apart by address), and both are still running and untouched afterwards. A bad file is one
sentence naming the file, the entry and the field; a key is never written in the file."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from pytest_mlxstack.fixture_models import fixture_model_path
from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.stack.endpoint_file import EndpointFileError, load_endpoints_file
from pytest_mlxstack.wiring.skips import skip_no_mlx_backend, skip_no_openai

KEY = "fleetKey4Qx9LmZ2"  # held by an environment variable the file names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        return int(answer.status)


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[tuple[psutil.Process, int]]]:
    """Two mlx_lm.server processes on the fixture model, started the way a user would."""
    home = tmp_path / "server-home"
    (home / "models").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "hub").mkdir(parents=True)
    (home / "models" / "tiny-chat").symlink_to(fixture_model_path("tiny-chat"))
    env = {**os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for number in range(2):
            port = _free_port()
            argv = [sys.executable, "-m", "mlx_lm", "server", "--model", "tiny-chat"]
            argv += ["--host", "127.0.0.1", "--port", str(port)]
            log = (tmp_path / f"server{number}.log").open("wb")
            proc = subprocess.Popen(
                argv, cwd=home / "models", env=env, stdout=log, stderr=log, start_new_session=True
            )
            started.append((proc, port))
        for proc, port in started:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if _health(port) == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None, "mlx_lm.server exited at start"
                assert time.monotonic() < deadline, "mlx_lm.server did not answer in 120 s"
                time.sleep(0.2)
        yield [(psutil.Process(proc.pid), port) for proc, port in started]
    finally:
        for proc, _ in started:
            os.killpg(proc.pid, signal.SIGTERM)  # ours: its own session, started above
            proc.wait(timeout=30)


def snapshot(server: psutil.Process) -> tuple[int, float, list[int]]:
    return server.pid, server.create_time(), sorted(c.pid for c in server.children(True))


@skip_no_mlx_backend
@skip_no_openai
@pytest.mark.skipif(importlib.util.find_spec("mlx_lm") is None, reason="mlx-lm is missing")
def test_the_suites_run_against_each_server_of_the_file(
    pytester: pytest.Pytester,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    two_servers: list[tuple[psutil.Process, int]],
) -> None:
    before = [snapshot(server) for server, _ in two_servers]
    (_, first), (_, second) = two_servers
    pytester.path.joinpath("endpoints.yaml").write_text(
        "endpoints:\n"
        f"  - url: http://127.0.0.1:{first}\n"
        "    catalog_model: tiny-chat\n"
        f"  - url: http://127.0.0.1:{second}/v1\n"
        "    model: tiny-chat\n"
        "    api_key_env: SECOND_SERVER_KEY\n"
    )
    monkeypatch.setenv("MLXSTACK_HOME", str(tmp_path / "mlxhome"))
    monkeypatch.setenv("SECOND_SERVER_KEY", KEY)

    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
        "--mlx-endpoints=endpoints.yaml",
        "--mlx-suites=smoke,harness",
        "-v",
        "-k",
        "inference or tool_calling",
    )

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] >= 8, outcomes  # per server: smoke and harness, 2+ capabilities
    names = [f"mlx-lm@127.0.0.1:{first}", f"mlx-lm@127.0.0.1:{second}"]
    for name in names:  # each server's tests, named after it
        result.stdout.fnmatch_lines([f"*test_capability?tiny-chat-bf16-{name}-direct-inference*"])
    matrix = load_matrix(pytester.path / "matrices" / "latest.json")
    assert sorted(row.server for row in matrix.rows) == sorted(names)
    assert {row.model for row in matrix.rows} == {"tiny-chat"}
    for row in matrix.rows:
        inference = row.cell("inference", "direct")
        assert inference is not None
        assert inference.verdict.value == "pass"
    (run,) = matrix.runs
    assert run.provenance["endpoint"] == (
        f"http://127.0.0.1:{first}/v1, http://127.0.0.1:{second}/v1"
    )
    assert KEY not in (pytester.path / "matrices" / "latest.json").read_text()
    assert KEY not in result.stdout.str() + result.stderr.str()
    # Both still running, untouched: the same processes, the same children, still answering.
    for (server, port), earlier in zip(two_servers, before, strict=True):
        assert server.is_running()
        assert server.status() != psutil.STATUS_ZOMBIE
        assert snapshot(server) == earlier
        assert _health(port) == 200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("endpoints: []\n", "endpoints.yaml: 'endpoints' is not a non-empty list"),
        ("- url: x\n", "endpoints.yaml: 'endpoints' is not a non-empty list"),
        (
            "endpoints:\n  - url: http://a:1\n  - {model: m}\n",
            "endpoints.yaml: endpoint 2, field 'url' is missing",
        ),
        (
            "endpoints:\n  - url: http://a:1\n    api_key: sk-abc\n",
            "endpoints.yaml: endpoint 1 (http://a:1), field 'api_key': a key is never written "
            "in the file; put it in an environment variable and name that with api_key_env",
        ),
        (
            "endpoints:\n  - url: ftp://a\n",
            "endpoints.yaml: endpoint 1 (ftp://a), field 'url': 'ftp://a' is not an http(s) URL",
        ),
        (
            "endpoints:\n  - url: http://a:1\n    modle: m\n",
            "endpoints.yaml: endpoint 1 (http://a:1), field 'modle' is not an endpoint field",
        ),
        (
            "endpoints:\n  - url: http://a:1\n    label: 3\n",
            "endpoints.yaml: endpoint 1 (http://a:1), field 'label': 3 is not a non-empty string",
        ),
        ("endpoints: [\n", "endpoints.yaml"),
    ],
)
def test_a_bad_file_is_one_sentence_naming_entry_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(text)
    with pytest.raises(EndpointFileError) as caught:
        load_endpoints_file(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_run_stops_with_that_sentence(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    pytester.path.joinpath("endpoints.yaml").write_text(
        f"endpoints:\n  - url: http://127.0.0.1:{port}\n    api_key_env: UNSET_FLEET_KEY\n"
    )
    monkeypatch.delenv("UNSET_FLEET_KEY", raising=False)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--mlx-endpoints=endpoints.yaml", "--collect-only"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, result.errlines
    assert (
        f"endpoints.yaml: endpoint 1 (http://127.0.0.1:{port}), field 'api_key_env': the "
        "environment variable UNSET_FLEET_KEY is not set"
    ) in errors[0]

    both = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--mlx-endpoints=endpoints.yaml",
        f"--mlx-endpoint=http://127.0.0.1:{port}",
        "--collect-only",
    )
    assert both.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mlx-endpoint and --mlx-endpoints both name servers" in both.stderr.str()


class _ModelList(BaseHTTPRequestHandler):
    """Answers /v1/models with one model, as a server that is only listed (not probed)."""

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "tiny-chat"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listed_servers() -> Iterator[list[int]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _ModelList) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [int(server.server_address[1]) for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_a_shard_splits_the_servers_of_the_file(
    pytester: pytest.Pytester, listed_servers: list[int]
) -> None:
    """Collection only: the two servers are asked for their model list, nothing else."""
    lines = "".join(
        f"  - url: http://127.0.0.1:{port}\n    label: box{number}\n"
        for number, port in enumerate(listed_servers, start=1)
    )
    pytester.path.joinpath("endpoints.yaml").write_text("endpoints:\n" + lines)
    seen = []
    for shard in ("1/2", "2/2"):
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--mlx-endpoints=endpoints.yaml",
            "--mlx-suites=smoke",
            f"--mlx-shard={shard}",
            "--co",
            "-q",
        )
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        ids = {
            line.split("[", 1)[1].split("-direct-")[0] for line in result.outlines if "[" in line
        }
        seen.append(ids)
    assert seen == [{"tiny-chat-bf16-box1"}, {"tiny-chat-bf16-box2"}]
