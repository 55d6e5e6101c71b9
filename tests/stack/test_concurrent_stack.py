"""A stack's servers and its LiteLLM start together (``stack/startup.py``): LiteLLM boots while
the models load, and a server that does not start leaves LiteLLM routing only the others.

Real vllm-mlx on two fixture models (or one and a folder it cannot load), real LiteLLM.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import psutil
import pytest

from pytest_mlxstack.fixture_models import fixture_model_path
from pytest_mlxstack.process.registry import PidRegistry
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.stack import ServerPool, StackError, StackSpec, TierSpec, start_stack
from pytest_mlxstack.wiring.skips import (
    skip_no_litellm,
    skip_no_mlx_backend,
    skip_no_openai,
    skip_no_vllm,
)

pytestmark = [skip_no_vllm, skip_no_litellm, skip_no_mlx_backend, skip_no_openai]


def listed_models(stack_url: str, key: str) -> set[str]:
    answer = httpx.get(f"{stack_url}/models", headers={"Authorization": f"Bearer {key}"})
    answer.raise_for_status()
    return {model["id"] for model in answer.json()["data"]}


def test_litellm_starts_while_the_models_are_still_loading(tmp_path: Path) -> None:
    said: list[str] = []
    spec = StackSpec(
        tiers=(
            TierSpec(name="one", model="tiny-chat"),
            TierSpec(name="two", model="tiny-chat-no-think"),
        )
    )
    with (
        ServiceManager(tmp_path / "home", grace_period=2) as manager,
        ServerPool(manager, tmp_path / "pool", on_progress=said.append) as pool,
    ):
        stack = start_stack(
            spec, manager=manager, directory=tmp_path / "stack", pool=pool, on_progress=said.append
        )
        with stack:
            proxy_begins = said.index("starting the LiteLLM proxy")
            ready = [i for i, line in enumerate(said) if " ready at http://127.0.0.1:" in line]
            servers_ready = [i for i in ready if not said[i].startswith("LiteLLM")]
            assert len(servers_ready) == 2, said
            assert proxy_begins < min(servers_ready), said  # it did not wait for them
            key = stack.master_key.reveal()
            assert listed_models(stack.proxy_url, key) == {"one", "two"}
            assert [count.starts for count in pool.start_counts()] == [1, 1]
    assert PidRegistry(tmp_path / "home").records() == []


def test_a_server_that_does_not_start_is_left_out_of_litellm(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(fixture_model_path("tiny-chat"), broken)
    with (broken / "model.safetensors").open("r+b") as weights:
        weights.truncate(1000)  # vllm-mlx exits while loading it
    spec = StackSpec(
        tiers=(TierSpec(name="good", model="tiny-chat"), TierSpec(name="bad", path=broken))
    )
    down: dict[str, StackError] = {}
    with ServiceManager(tmp_path / "home", grace_period=2) as manager:
        stack = start_stack(
            spec,
            manager=manager,
            directory=tmp_path / "stack",
            on_down=lambda tier, error: down.setdefault(tier, error),
        )
        with stack:
            assert list(down) == ["bad"]
            assert "did not start" in str(down["bad"])
            assert list(stack.tiers) == ["good"]
            assert stack.proxy is not None
            assert listed_models(stack.proxy_url, stack.master_key.reveal()) == {"good"}
            services = {service.name for service in manager.services.values()}
            assert services == {"good", "litellm"}  # the first LiteLLM, routing "bad", is gone
        pids = [record.pid for record in PidRegistry(tmp_path / "home").records()]
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert PidRegistry(tmp_path / "home").records() == []


def test_without_on_down_a_server_that_does_not_start_stops_everything(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    spec = StackSpec(
        tiers=(TierSpec(name="good", model="tiny-chat"), TierSpec(name="bad", path=broken))
    )
    with ServiceManager(tmp_path / "home", grace_period=2) as manager:
        with pytest.raises(StackError, match="bad did not start"):
            start_stack(spec, manager=manager, directory=tmp_path / "stack")
        assert manager.services == {}
    assert PidRegistry(tmp_path / "home").records() == []
    assert not (tmp_path / "stack").exists()
