"""Server kinds: a tier names its server program, the pool keeps kinds apart, a catalog's parser
names are checked against the kind that will serve them, and a real mlx_lm.server serves the
fixture model under its served name through the same stack code as vllm-mlx."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psutil
import pytest
from stack_helpers import bindable, live_pids

from pytest_mlxstack import skip_no_mlx_backend, skip_no_openai, skip_no_vllm
from pytest_mlxstack.fixture_models import fixture_model_path
from pytest_mlxstack.probe_prompts import WEATHER_TOOL, weather
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.stack import (
    LiteLLMSpec,
    ParserChoice,
    ServerPool,
    StackError,
    StackSpec,
    StackSpecError,
    TierSpec,
    load_stack_file,
    start_stack,
)
from pytest_mlxstack.stack.clients import tier_client
from pytest_mlxstack.stack.kinds import KIND_NAMES, get_kind

skip_no_mlx_lm = pytest.mark.skipif(
    importlib.util.find_spec("mlx_lm") is None, reason="mlx-lm is not installed"
)


def test_a_stack_file_chooses_the_kind_and_a_wrong_one_is_one_sentence(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "tiers:\n  fast: {model: tiny-chat, kind: mlx-lm}\n  slow: {model: tiny-chat}\n"
    )
    spec = load_stack_file(good)
    assert [tier.kind for tier in spec.tiers] == ["mlx-lm", "vllm-mlx"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers:\n  fast: {model: tiny-chat, kind: ollama}\n")
    with pytest.raises(StackSpecError) as caught:
        load_stack_file(bad)
    message = str(caught.value)
    assert "tiers.fast.kind" in message
    assert "'ollama'" in message
    assert all(name in message for name in KIND_NAMES)
    assert "\n" not in message


def test_vllm_settings_are_refused_on_mlx_lm() -> None:
    with pytest.raises(StackSpecError, match=r"continuous_batching.*mlx_lm\.server"):
        TierSpec(name="fast", model="tiny-chat", kind="mlx-lm", continuous_batching=True)
    with pytest.raises(StackSpecError, match="--port"):
        TierSpec(name="fast", model="tiny-chat", kind="mlx-lm", flags=("--port", "9"))


def test_parser_names_are_checked_against_the_kind_that_serves_them(tmp_path: Path) -> None:
    # llama3 is a vllm-mlx tool parser; mlx_lm.server has no such format.
    spec = StackSpec(
        tiers=(
            TierSpec(
                name="fast",
                path=fixture_model_path("tiny-chat"),
                tool_call_parser="llama3",
                kind="mlx-lm",
            ),
        ),
        litellm=LiteLLMSpec(enabled=False),
    )
    with ServiceManager(tmp_path / "home") as manager:
        with pytest.raises(StackError) as caught:
            start_stack(spec, manager=manager, directory=tmp_path / "stack")
        assert manager.services == {}
    message = str(caught.value)
    assert "Tier 'fast' (mlx-lm)" in message
    assert "'llama3'" in message
    assert "json_tools" not in message  # the catalog's names, not mlx-lm's module names
    # The same parser is fine for vllm-mlx, and hermes (the fixture's) is fine for both.
    assert get_kind("vllm-mlx").parser_problem(_choice("llama3")) is None
    assert get_kind("mlx-lm").parser_problem(_choice("hermes")) is None


def _choice(tool: str) -> ParserChoice:
    return ParserChoice(tool, "qwen3")


@skip_no_mlx_lm
@skip_no_mlx_backend
@skip_no_openai
def test_mlx_lm_serves_the_fixture_under_its_served_name(tmp_path: Path) -> None:
    spec = StackSpec(
        tiers=(TierSpec(name="fast", model="tiny-chat", kind="mlx-lm"),),
        litellm=LiteLLMSpec(enabled=False),
    )
    with ServiceManager(tmp_path / "home") as manager:
        stack = start_stack(spec, manager=manager, directory=tmp_path / "stack")
        server = stack.tier("fast")
        assert server.kind == "mlx-lm"
        assert "mlx_lm" in " ".join(server.service.argv)
        client = tier_client(stack, "fast")
        answer = client.chat.completions.create(
            model="tiny-chat",
            messages=weather("Paris").messages,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            temperature=0,
            max_tokens=96,
        )
        message = answer.choices[0].message
        assert message.tool_calls, message
        assert message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
        pid, port = server.service.pid, server.port
        stack.down()
    assert live_pids([pid]) == []
    assert bindable(port)


@skip_no_mlx_lm
@skip_no_vllm
@skip_no_mlx_backend
def test_the_pool_keeps_two_kinds_of_the_same_model_apart(tmp_path: Path) -> None:
    from pytest_mlxstack.stack.models import load_catalogs, resolve_tier

    tiers = [
        TierSpec(name="a", model="tiny-chat"),
        TierSpec(name="b", model="tiny-chat", kind="mlx-lm"),
    ]
    catalogs = load_catalogs(StackSpec(tiers=tuple(tiers)))
    with (
        ServiceManager(tmp_path / "home") as manager,
        ServerPool(manager, tmp_path / "pool") as pool,
    ):
        served = [pool.serve(t, resolve_tier(t, catalogs=catalogs)) for t in tiers]
        again = pool.serve(tiers[1], resolve_tier(tiers[1], catalogs=catalogs))
        assert served[0].service.pid != served[1].service.pid
        assert again.service.pid == served[1].service.pid
        kinds = {psutil.Process(s.service.pid).cmdline()[1:3] == ["-m", "mlx_lm"] for s in served}
        assert kinds == {True, False}
        assert sorted(s.kind for s in pool.start_counts()) == ["mlx-lm", "vllm-mlx"]
        assert all(s.starts == 1 for s in pool.start_counts())
        pids = [s.service.pid for s in served]
    assert live_pids(pids) == []
