"""``--mlx-endpoint``: the smoke and harness suites, and a user's own test through
``openai_client``, against a server the plugin did not start. The test starts a real
mlx_lm.server itself, runs the suites in an inner pytest, then finds the server still running,
untouched (same process, same children, still answering), and stops it by its pid."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pytest_mlxstack.fixture_models import fixture_model_path
from pytest_mlxstack.matrix.model import load_matrix
from pytest_mlxstack.process.ports import port_is_free
from pytest_mlxstack.wiring.skips import skip_no_mlx_backend, skip_no_openai

pytestmark = [
    skip_no_mlx_backend,
    skip_no_openai,
    pytest.mark.skipif(importlib.util.find_spec("mlx_lm") is None, reason="mlx-lm is missing"),
]

ERRORS_TEST = "harness.py::test_openai_client[tiny-chat-bf16-proxied-errors]"
USER_TEST = """
def test_mine(openai_client, mlx_endpoint):
    answer = openai_client.chat.completions.create(
        model=mlx_endpoint.model,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
    )
    assert answer.choices[0].message.content
    assert mlx_endpoint.server == "mlx-lm"
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        return int(answer.status)


@pytest.fixture
def outside_server(tmp_path: Path) -> Iterator[tuple[psutil.Process, int]]:
    """mlx_lm.server started the way a user would, not through the plugin."""
    port = _free_port()
    home = tmp_path / "server-home"
    (home / "models").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "hub").mkdir(parents=True)  # a user's Hub cache
    (home / "models" / "tiny-chat").symlink_to(fixture_model_path("tiny-chat"))
    env = {**os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "mlx_lm", "server", "--model", "tiny-chat"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        argv, cwd=home / "models", env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _health(port) == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "mlx_lm.server did not answer in 120 s"
            time.sleep(0.2)
        yield psutil.Process(proc.pid), port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # ours: its own session, started above
        proc.wait(timeout=30)
        log.close()


def test_the_suites_run_against_a_server_the_plugin_did_not_start(
    pytester: pytest.Pytester,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    outside_server: tuple[psutil.Process, int],
) -> None:
    server, port = outside_server
    before = (server.pid, server.create_time(), sorted(c.pid for c in server.children(True)))
    monkeypatch.setenv("MLXSTACK_HOME", str(tmp_path / "mlxhome"))
    pytester.makepyfile(test_user=USER_TEST)

    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
        f"--mlx-endpoint=http://127.0.0.1:{port}",
        "--mlx-suites=all",
        "-rfE",
        "test_user.py",
    )

    # Real differences of mlx_lm.server show, each the server's: without a proxy in front, an
    # unknown model gets 404 {"error": "<text>"}, not the OpenAI error shape an agent's client
    # expects; and it serves neither /v1/responses nor /v1/messages (404).
    result.stdout.fnmatch_lines(["test_user.py .*"])
    failed = sorted(
        line.split(" - ", 1)[0] for line in result.outlines if line.startswith("FAILED ")
    )
    # Its missing agent routes are known failures of mlx_lm.server; the error shape is not.
    assert failed == [f"FAILED {ERRORS_TEST}"], failed
    assert "failed (server_error)" in result.stdout.str()
    assert result.parseoutcomes()["passed"] >= 24  # the other suite cells and the user's test
    assert "integration.py" not in result.stdout.str()
    # Still running, untouched: the same process, the same children, still answering.
    assert server.is_running()
    assert server.status() != psutil.STATUS_ZOMBIE
    after = (server.pid, server.create_time(), sorted(c.pid for c in server.children(True)))
    assert after == before
    assert _health(port) == 200
    assert not port_is_free(port)

    matrix = load_matrix(pytester.path / "matrices" / "latest.json")
    (run,) = matrix.runs
    assert run.provenance["server"] == "mlx-lm"  # detected from its answers
    assert run.provenance["endpoint"] == f"http://127.0.0.1:{port}/v1"
    (row,) = matrix.rows
    assert row.model == "tiny-chat"
    assert row.server == "mlx-lm"  # the row names the server, detected from its answers
    assert row.server_starts is None
    shape = row.cell("errors", "proxied")
    assert shape is not None
    assert shape.attribution is not None
    assert shape.attribution.value == "server_error"
    assert "not in the OpenAI error shape" in shape.reason
    ignored = row.cell("tool_choice_none", "direct")
    assert ignored is not None
    assert ignored.verdict.value == "fail"  # mlx_lm.server's own fault, known for mlx-lm
    assert ignored.expectation is not None
    assert ignored.expectation.status == "known_failure"


def test_a_label_names_the_server_and_a_dead_url_is_one_sentence(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLXSTACK_HOME", str(tmp_path / "mlxhome"))
    port = _free_port()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--mlx-endpoint=http://127.0.0.1:{port}", "--collect-only"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, result.errlines
    assert f"http://127.0.0.1:{port}/v1 did not answer" in errors[0]
    assert "Traceback" not in result.stderr.str()

    bad = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--mlx-endpoint=ftp://x")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "'ftp://x' is not an http(s) URL" in bad.stderr.str()
