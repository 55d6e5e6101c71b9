"""``mlxstack up/status/logs/down`` driven as a user would: subprocesses, the real stack."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from stack_helpers import bindable, files_containing, live_pids

import pytest_mlxstack.fixture_models
from pytest_mlxstack import skip_no_litellm, skip_no_mlx_backend, skip_no_openai, skip_no_vllm
from pytest_mlxstack.catalog.hubserver import LocalHub
from pytest_mlxstack.probe_prompts import GREETING, WEATHER_TOOL, weather
from pytest_mlxstack.process.registry import PidRegistry

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_mlx_backend, skip_no_openai]

MLXSTACK = str(Path(sys.executable).parent / "mlxstack")
CHAT_POSTS = re.compile(r'"POST /v1/chat/completions HTTP/1\.1"')
NO_KEY = "No api key passed in"  # how LiteLLM's auth check names a request without a key
BLOCKER = '''
import sys

class _NotInstalled:
    """Makes these packages look uninstalled, as in an environment without the extra."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """An empty mlxstack home; whatever a failed test left running there is stopped."""
    path = tmp_path / "mlxhome"
    path.mkdir()
    yield path
    subprocess.run([MLXSTACK, "down", "--home", str(path)], capture_output=True, timeout=120)


def mlxstack(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLXSTACK, *args, "--home", str(home), "--grace-period", "5"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def pids_and_ports(output: str) -> tuple[list[int], list[int]]:
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", output)]
    ports = [int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/v1", output)]
    return pids, ports


def test_detached_stack_up_status_chat_logs_down(home: Path) -> None:
    # up --detach returns once the stack is ready and leaves it running
    up = mlxstack("up", "--detach", home=home)
    assert up.returncode == 0, up.stderr
    pids, ports = pids_and_ports(up.stdout)
    assert len(pids) == 2
    assert live_pids(pids) == pids
    proxy_url = re.search(r"LiteLLM proxy: (\S+)", up.stdout).group(1)  # type: ignore[union-attr]
    key_path = Path(re.search(r"master key: in (\S+)", up.stdout).group(1))  # type: ignore[union-attr]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = key_path.read_text().strip()
    assert key.startswith("sk-")
    assert key not in up.stdout + up.stderr

    # the services are recorded as detached: no session will reap them
    records = PidRegistry(home).records()
    assert {r.owner.kind for r in records} == {"detached"}

    # status: one row per service, healthy, with the model
    status = mlxstack("status", home=home)
    assert status.returncode == 0, status.stderr
    header, *rows = status.stdout.splitlines()
    assert header.split()[:6] == ["SERVICE", "PID", "PORT", "HEALTH", "UPTIME", "MODEL"]
    table = {row.split()[0]: row.split() for row in rows}
    assert sorted(table) == ["fast", "litellm"]
    assert table["fast"][3] == table["litellm"][3] == "ok"
    assert table["fast"][5].startswith("tiny-chat:")
    assert {int(table[name][1]) for name in table} == set(pids)

    # a chat completion through the proxy with the key from the key file
    with openai.OpenAI(base_url=proxy_url, api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="fast", messages=GREETING.messages, temperature=0, max_tokens=16
        )
    assert reply.choices[0].message.content

    # tool calling through LiteLLM: a structured get_weather call, as the model emitted it
    with openai.OpenAI(base_url=proxy_url, api_key=key, max_retries=0) as client:
        response = client.chat.completions.create(
            model="fast",
            messages=weather("Paris").messages,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            temperature=0,
            max_tokens=60,
        )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"location": "Paris"}  # type: ignore[union-attr]

    # a request without the key is refused by LiteLLM's auth check and never reaches the model
    seen = len(CHAT_POSTS.findall(mlxstack("logs", "fast", "--lines", "1000", home=home).stdout))
    request = urllib.request.Request(
        f"{proxy_url}/chat/completions",
        data=json.dumps({"model": "fast", "messages": GREETING.messages}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    answer = refused.value.read().decode("utf-8", errors="replace")
    assert refused.value.code == 401
    proxy_log = mlxstack("logs", "litellm", "--lines", "200", home=home).stdout
    assert NO_KEY in answer + proxy_log
    assert "choices" not in answer
    tier_log = mlxstack("logs", "fast", "--lines", "1000", home=home).stdout
    assert len(CHAT_POSTS.findall(tier_log)) == seen

    # logs: the proxy's log shows the request, never the key
    logs = mlxstack("logs", "litellm", "--lines", "200", home=home)
    assert logs.returncode == 0, logs.stderr
    assert "POST /v1/chat/completions" in logs.stdout
    assert key not in status.stdout + logs.stdout + logs.stderr
    assert files_containing(home, key) == [key_path]

    # down stops everything; the processes are gone and every port is free
    down = mlxstack("down", home=home)
    assert down.returncode == 0, down.stderr
    assert sorted(re.findall(r"stopped (\S+) \(pid", down.stdout)) == ["fast", "litellm"]
    assert live_pids(pids) == []
    assert [port for port in ports if not bindable(port)] == []
    assert PidRegistry(home).records() == []
    assert not key_path.exists()

    # down again is a no-op, and status says nothing runs
    again = mlxstack("down", home=home)
    assert again.returncode == 0
    assert "nothing to stop" in again.stdout
    assert "no services recorded" in mlxstack("status", home=home).stdout


def test_a_stable_stack_keeps_its_key_and_port_and_env_prints_them(home: Path) -> None:
    """``up --stable`` twice: the same LiteLLM port and master key, so an agent configured
    once keeps working; ``env`` prints exactly the exports that reach it; while loading,
    ``up`` says what it is doing."""
    endpoints = []
    for _ in range(2):
        up = mlxstack("up", "--detach", "--stable", home=home)
        assert up.returncode == 0, up.stderr
        assert "mlxstack: loading tiny-chat:bf16 in vllm-mlx for tier fast" in up.stderr
        assert "mlxstack: LiteLLM ready at http://127.0.0.1:" in up.stderr
        env = mlxstack("env", home=home)
        assert env.returncode == 0, env.stderr
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", env.stdout, flags=re.MULTILINE))
        endpoints.append(exports)
        status = mlxstack("status", home=home).stdout
        assert exports["OPENAI_BASE_URL"] in status  # status shows each service's URL
        with openai.OpenAI(
            base_url=exports["OPENAI_BASE_URL"], api_key=exports["OPENAI_API_KEY"], max_retries=0
        ) as client:
            assert [model.id for model in client.models.list()] == ["fast"]
        assert mlxstack("down", home=home).returncode == 0
    assert endpoints[0] == endpoints[1]
    assert endpoints[0]["OPENAI_API_KEY"].startswith("sk-")

    gone = mlxstack("env", home=home)
    assert gone.returncode == 2
    assert "no stack started by 'mlxstack up' is running" in gone.stderr


def test_foreground_up_stops_its_stack_on_sigterm(home: Path) -> None:
    process = subprocess.Popen(
        [MLXSTACK, "up", "--no-litellm", "--home", str(home), "--grace-period", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops the stack" in line:
                break
        pids, ports = pids_and_ports("".join(lines))
        assert len(pids) == 1, "".join(lines) + (process.stderr.read() if process.stderr else "")
        assert {r.owner.kind for r in PidRegistry(home).records()} == {"process"}
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "stopped" in out
    assert live_pids(pids) == []
    assert bindable(ports[0])
    assert PidRegistry(home).records() == []


def test_unknown_model_is_one_line_and_starts_nothing(home: Path) -> None:
    result = mlxstack("up", "--model", "no-such-model", home=home)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("mlxstack: Tier 'no-such-model': unknown model 'no-such-model'")
    assert "tiny-chat" in line  # the known ids are listed
    assert PidRegistry(home).records() == []


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port held by a listening socket that is not ours to stop."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_port_in_use_is_one_line_and_starts_nothing(home: Path, squatter: int) -> None:
    result = mlxstack("up", "--port", str(squatter), home=home)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"mlxstack: Port {squatter} (LiteLLM) is already in use on 127.0.0.1; stop the program "
        "holding it, choose another port, or use auto"
    ]
    assert PidRegistry(home).records() == []


def test_missing_stack_extra_names_what_to_install(home: Path, tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCKER.replace("{BLOCKED}", "{'vllm_mlx', 'litellm'}"))
    result = mlxstack("up", home=home, env={"PYTHONPATH": str(shim)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "mlxstack: vllm-mlx and litellm[proxy] are not installed, so no stack can start; "
        "install the stack extra: pip install 'pytest-mlxstack[stack]'"
    ]


def test_broken_stack_file_is_one_line(home: Path, tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text("tiers:\n  fast:\n    model: tiny-chat\n    paged_cache: true\n")
    result = mlxstack("up", "--stack", str(stack_file), home=home)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mlxstack: Stack file {stack_file}, field 'tiers.fast.paged_cache'")


def test_logs_of_an_unknown_service_is_one_line(home: Path) -> None:
    result = mlxstack("logs", "nothing-here", home=home)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("mlxstack: No service 'nothing-here' is recorded under")


def shadowing_packages(root: Path, modules: dict[str, str]) -> dict[str, str]:
    """A PYTHONPATH folder whose packages shadow the real ones and raise on import, as a
    broken or partial installation does; the environment that puts it first."""
    for module, error in modules.items():
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            package = root.joinpath(*parts[:depth])
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").touch()
        (package / "__init__.py").write_text(f"raise {error}\n")
    return {"PYTHONPATH": str(root)}


def nothing_started(home: Path) -> bool:
    stacks = home / "stacks"
    return PidRegistry(home).records() == [] and (not stacks.exists() or not any(stacks.iterdir()))


def test_no_mlx_backend_is_one_line_before_anything_starts(home: Path, tmp_path: Path) -> None:
    # plain `mlx` on Linux: the package is there, but mlx.core cannot load its library
    env = shadowing_packages(
        tmp_path / "shadow",
        {"mlx.core": 'ImportError("libmlx.so: cannot open shared object file")'},
    )
    result = mlxstack("up", "--detach", home=home, env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("mlxstack: no tier can start: MLX is installed but cannot run here")
    assert "libmlx.so" in line
    assert "pip install 'pytest-mlxstack[stack]'" in line
    assert nothing_started(home)


def test_litellm_without_its_proxy_dependencies_is_one_line_before_anything_starts(
    home: Path, tmp_path: Path
) -> None:
    env = shadowing_packages(
        tmp_path / "shadow",
        {
            name: f"ModuleNotFoundError(\"No module named '{name}'\", name='{name}')"
            for name in ("backoff", "apscheduler")
        },
    )
    result = mlxstack("up", "--detach", home=home, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "mlxstack: litellm is installed without its proxy dependencies (cannot import: "
        "backoff, apscheduler), so LiteLLM cannot start; install the stack extra, which brings "
        "litellm[proxy]: pip install 'pytest-mlxstack[stack]' (or serve the tiers with "
        "--no-litellm)"
    ]
    assert nothing_started(home)


def test_a_service_that_dies_at_start_is_one_line_with_its_log(home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # vllm-mlx cannot load it and exits
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text("tiers:\n  broken:\n    path: ./broken-model\nlitellm: false\n")
    result = mlxstack("up", "--stack", str(stack_file), "--detach", home=home)
    assert result.returncode == 2
    progress, line = result.stderr.splitlines()  # what it was doing, then the one error line
    assert progress.startswith("mlxstack: loading ")
    assert line.startswith("mlxstack: vllm-mlx for broken did not start: ")
    log = Path(re.search(r"\(log (\S+)\)", line).group(1))  # type: ignore[union-attr]
    assert log.is_file()
    assert log.parent == home / "logs"
    assert "its last log line: " in line
    assert nothing_started(home)


@pytest.mark.parametrize("with_catalog", [False, True])
def test_unknown_model_in_a_stack_file_names_the_file_and_its_fix(
    home: Path, tmp_path: Path, with_catalog: bool
) -> None:
    from pytest_mlxstack.fixture_models import fixture_catalog_path

    stack_file = tmp_path / "stack.yaml"
    catalog = f"catalog: {fixture_catalog_path()}\n" if with_catalog else ""
    stack_file.write_text(f"{catalog}tiers:\n  fast:\n    model: nosuch\n")
    result = mlxstack("up", "--stack", str(stack_file), home=home)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"mlxstack: Stack file {stack_file}, tier 'fast': unknown model 'nosuch' (looked in "
    )
    fix = "point 'catalog:' at a catalog that has it" if with_catalog else "add 'catalog:' to "
    assert fix in line
    assert line.endswith(" or fix the model id")
    assert "--catalog" not in line  # refused with a stack file, so never suggested
    assert nothing_started(home)


def test_up_downloads_a_hub_model_into_the_cache_and_says_so(home: Path, tmp_path: Path) -> None:
    # the fixture model published on a local Hub: 'up' must fetch it through huggingface_hub
    fixture = Path(pytest_mlxstack.fixture_models.__file__).parent / "tiny-chat"
    files = {p.name: p.read_bytes() for p in fixture.iterdir() if p.name != "BUILD.json"}
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    entry = yaml.safe_load((fixture.parent / "catalog" / "tiny-chat.yaml").read_text())
    entry["sources"] = {"bf16": {"hf_repo": "tiny-org/tiny-chat-mlx", "disk_size_gb": 0.00095}}
    (catalog / "tiny-chat.yaml").write_text(yaml.safe_dump(entry))
    cache = tmp_path / "cache"
    with LocalHub() as hub:
        hub.add_repo("tiny-org/tiny-chat-mlx", files)
        env = {"HF_ENDPOINT": hub.url, "MLXSTACK_CACHE_DIR": str(cache), "HF_TOKEN": ""}
        up = mlxstack(
            "up", "--catalog", str(catalog), "--model", "tiny-chat", "--no-litellm", "--detach",
            home=home, env=env,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
    assert "mlxstack: downloading tiny-org/tiny-chat-mlx@main into" in up.stderr
    assert re.search(r"mlxstack: downloaded tiny-org/tiny-chat-mlx: [\d.]+ [kM]B in", up.stderr)
    assert "downloading" not in up.stdout  # stdout stays the summary a script can read
    assert sorted(p.name for p in cache.rglob("model.safetensors")) == ["model.safetensors"]
    status = mlxstack("status", home=home)
    assert "tiny-chat:bf16" in status.stdout, status.stdout
    down = mlxstack("down", home=home)
    assert down.returncode == 0, down.stderr
