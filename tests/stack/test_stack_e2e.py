"""The real stack through the library: vllm-mlx serving the fixture model behind LiteLLM,
driven with the real OpenAI client. One stack per module (LiteLLM and vllm-mlx take seconds
to start); the shutdown test brings up its own so it can take it down."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest
from stack_helpers import (
    GRACE_S,
    bindable,
    files_containing,
    listen_addresses,
    listening_ports,
    live_pids,
)

from pytest_mlxstack import (
    skip_no_litellm,
    skip_no_mlx_backend,
    skip_no_openai,
    skip_no_vllm,
)
from pytest_mlxstack.probe_prompts import GREETING, WEATHER_TOOL, weather
from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.process.services import ServiceManager, ServiceStartError
from pytest_mlxstack.stack import (
    LiteLLMSpec,
    ServerPool,
    Stack,
    StackError,
    StackSpec,
    TierSpec,
    default_stack_spec,
    start_stack,
)
from pytest_mlxstack.stack.clients import proxy_client, tier_client

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_mlx_backend, skip_no_openai]

CHAT_POSTS = re.compile(r'"POST /v1/chat/completions HTTP/1\.1"')
# How LiteLLM's auth check names a request without a key. 1.106 logs it
# ("user_api_key_auth(): Exception occured - No api key passed in.") and answers a bare 500
# "Internal Server Error", because its auth error handler fails without a database.
NO_KEY = "No api key passed in"


@dataclass
class Running:
    home: Path
    manager: ServiceManager
    pool: ServerPool
    stack: Stack


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("stack-e2e")
    with (
        ServiceManager(home, grace_period=GRACE_S) as manager,
        ServerPool(manager, home / "pool") as pool,
    ):
        stack = start_stack(
            default_stack_spec(), manager=manager, directory=home / "stack", pool=pool
        )
        with stack:
            yield Running(home, manager, pool, stack)


def chat_posts_seen_by_the_model(stack: Stack) -> int:
    """How many chat requests reached the tier's vllm-mlx (its uvicorn access log)."""
    log = stack.tier("fast").service.log_path
    return len(CHAT_POSTS.findall(log.read_text(encoding="utf-8", errors="replace")))


def test_chat_through_litellm_with_the_master_key(running: Running) -> None:
    stack = running.stack
    with proxy_client(stack) as client:
        via_proxy = client.chat.completions.create(
            model="fast", messages=GREETING.messages, temperature=0, max_tokens=40
        )
    with tier_client(stack, "fast") as client:
        direct = client.chat.completions.create(
            model=stack.tier("fast").served_name,
            messages=GREETING.messages,
            temperature=0,
            max_tokens=40,
        )
    answer = via_proxy.choices[0].message.content
    assert answer
    assert answer == direct.choices[0].message.content  # LiteLLM passes it through unchanged


def proxy_log_size(stack: Stack) -> int:
    assert stack.proxy is not None
    return stack.proxy.log_path.stat().st_size


def proxy_log_since(stack: Stack, offset: int) -> str:
    """What LiteLLM logged after ``offset`` bytes (it runs unbuffered: a line is written
    before the answer that follows it is sent)."""
    assert stack.proxy is not None
    with open(stack.proxy.log_path, "rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", errors="replace")


def test_request_without_the_key_is_refused_before_reaching_the_model(running: Running) -> None:
    stack = running.stack
    before = chat_posts_seen_by_the_model(stack)
    logged_before = proxy_log_size(stack)
    body = json.dumps({"model": "fast", "messages": GREETING.messages}).encode()
    request = urllib.request.Request(
        f"{stack.proxy_url}/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    # LiteLLM 1.106 without a database answers a missing key with 500 (its auth error handler
    # fails), not 401. A 500 alone could be any crash, so the refusal must be the auth check's:
    # its log names the missing key, and the body is LiteLLM's, not a model's answer.
    answer = refused.value.read().decode("utf-8", errors="replace")
    assert refused.value.code in (401, 500)
    assert NO_KEY in answer + proxy_log_since(stack, logged_before)
    assert "choices" not in answer
    assert chat_posts_seen_by_the_model(stack) == before


def test_request_with_a_wrong_key_is_refused_before_reaching_the_model(running: Running) -> None:
    stack = running.stack
    before = chat_posts_seen_by_the_model(stack)
    client = openai.OpenAI(base_url=stack.proxy_url, api_key="sk-not-the-key", max_retries=0)
    with client, pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="fast", messages=GREETING.messages, max_tokens=8)
    assert refused.value.status_code in (400, 401, 403)
    assert chat_posts_seen_by_the_model(stack) == before


@pytest.mark.parametrize("city", ["Paris", "Tokyo"])
def test_tool_call_comes_through_litellm_structured(running: Running, city: str) -> None:
    with proxy_client(running.stack) as client:
        response = client.chat.completions.create(
            model="fast",
            messages=weather(city).messages,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            temperature=0,
            max_tokens=60,
        )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"location": city}  # type: ignore[union-attr]


def test_litellm_lists_the_tiers_and_vllm_the_served_name(running: Running) -> None:
    stack = running.stack
    with proxy_client(stack) as client:
        assert [model.id for model in client.models.list()] == ["fast"]
    with tier_client(stack, "fast") as client:
        assert [model.id for model in client.models.list()] == ["tiny-chat"]


def test_services_listen_on_loopback_only_with_a_home_of_their_own(running: Running) -> None:
    for service in running.stack.services:
        assert listen_addresses(service.pid) == {"127.0.0.1"}
        home = Path(psutil.Process(service.pid).environ()["HOME"])
        assert home.is_relative_to(running.home)
        assert home != Path.home()


def test_second_stack_on_the_same_model_reuses_the_pooled_server(running: Running) -> None:
    spec = StackSpec(tiers=(TierSpec("other", model="tiny-chat"),), litellm=LiteLLMSpec(False))
    second = start_stack(
        spec, manager=running.manager, directory=running.home / "second", pool=running.pool
    )
    with second:
        assert second.tier("other").service.pid == running.stack.tier("fast").service.pid
        # one server, so one HOME (and prefix cache) for both stacks: the pool's, not theirs
        shared_home = process_home(second.tier("other").service.pid)
        assert shared_home.is_relative_to(running.home / "pool")
        assert not shared_home.is_relative_to(second.directory)
        assert not shared_home.is_relative_to(running.stack.directory)
        assert second.tier("other").startup_s is None  # reused, not started
        assert running.stack.tier("fast").startup_s is not None
        assert second.proxy is None
    [entry] = running.pool.start_counts()
    assert (entry.model_label, entry.starts) == ("tiny-chat:bf16", 1)
    with tier_client(running.stack, "fast") as client:  # still served after second.down()
        assert client.models.list().data


def test_the_master_key_is_in_no_file_and_no_repr(running: Running) -> None:
    key = running.stack.master_key.reveal()
    with proxy_client(running.stack) as client:  # make sure the proxy has logged requests
        client.chat.completions.create(model="fast", messages=GREETING.messages, max_tokens=4)
    assert files_containing(running.home, key) == []
    assert key not in repr(running.stack)
    for service in running.stack.services:
        assert key not in " ".join(psutil.Process(service.pid).cmdline())


def process_home(pid: int) -> Path:
    """The HOME a running process was started with."""
    return Path(psutil.Process(pid).environ()["HOME"])


def test_unpooled_stack_has_its_own_server_home_and_prefix_cache_and_down_removes_them(
    tmp_path: Path,
) -> None:
    with ServiceManager(tmp_path / "home", grace_period=GRACE_S) as manager:
        stack = start_stack(default_stack_spec(), manager=manager, directory=tmp_path / "stack")
        tier, proxy = stack.tier("fast"), stack.proxy
        assert proxy is not None
        assert not tier.pooled
        # vllm-mlx keeps its prefix cache under ~/.cache/vllm-mlx: HOME is the stack's own
        assert process_home(tier.service.pid) == stack.directory / "tiers" / "fast" / "home"
        assert process_home(proxy.pid) == stack.directory / "home"
        logs = [service.log_path for service in stack.services]
        stack.down()
        assert not stack.directory.exists()  # start_stack created it: down() removes it
        assert all(log.is_file() for log in logs)  # the logs (under the home) stay


def test_down_leaves_no_process_and_frees_every_port(tmp_path: Path) -> None:
    with ServiceManager(tmp_path / "home", grace_period=GRACE_S) as manager:
        stack = start_stack(default_stack_spec(), manager=manager, directory=tmp_path / "stack")
        pids = set()
        for service in stack.services:
            root = psutil.Process(service.pid)
            pids |= {root.pid, *(child.pid for child in root.children(recursive=True))}
        ports = stack.ports
        assert len(ports) == 2
        stack.down()
        assert live_pids(pids) == []
        assert [port for port in ports if not bindable(port)] == []
        assert set(ports) & listening_ports() == set()
        assert PidRegistry(tmp_path / "home").records() == []


def test_down_keeps_a_directory_it_did_not_create_and_removes_only_its_own_files(
    running: Running, tmp_path: Path
) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("the caller's file")
    spec = StackSpec(tiers=(TierSpec("again", model="tiny-chat"),))
    stack = start_stack(
        spec,
        manager=running.manager,
        directory=tmp_path,
        pool=running.pool,
        service_prefix="kept-",
    )
    with stack:
        assert (tmp_path / "home").is_dir()
        assert (tmp_path / "litellm.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_failed_start_leaves_no_process_and_no_directory_but_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # a folder vllm-mlx cannot load: it exits
    spec = StackSpec(tiers=(TierSpec("broken", path=broken),))
    with ServiceManager(tmp_path / "home", grace_period=GRACE_S) as manager:
        with pytest.raises(StackError, match=r"vllm-mlx for broken did not start") as failed:
            start_stack(spec, manager=manager, directory=tmp_path / "stack")
        cause = failed.value.__cause__
        assert isinstance(cause, ServiceStartError)
        assert cause.log_path is not None
        assert cause.log_path.is_file()  # kept for the failure report
        assert not (tmp_path / "stack").exists()
        assert PidRegistry(tmp_path / "home").records() == []
