"""The llama.cpp kind: llama-server serving a fixture model's GGUF through the same stack code.

The tests that start llama-server run wherever the binary is found (on PATH, or named by
``MLXSTACK_LLAMA_SERVER``) and skip elsewhere with the one sentence the plugin itself gives: it
has no wheel, and building it takes about 22 minutes on two cores, so CI does not. The refusals
run everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stack_helpers import bindable, live_pids

from pytest_mlxstack import skip_no_openai
from pytest_mlxstack.fixture_models import fixture_model_path
from pytest_mlxstack.probe_prompts import GREETING, WEATHER_TOOL, weather
from pytest_mlxstack.process.services import ServiceManager
from pytest_mlxstack.stack import (
    LiteLLMSpec,
    StackError,
    StackSpec,
    StackSpecError,
    TierSpec,
    start_stack,
)
from pytest_mlxstack.stack.clients import tier_client
from pytest_mlxstack.stack.kinds import LLAMA_CPP

pytest_plugins = ["pytester"]

needs_llama_server = pytest.mark.skipif(
    not LLAMA_CPP.installed(), reason=LLAMA_CPP.missing_reason()
)


def test_a_missing_llama_server_is_one_sentence(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-llama-server"
    monkeypatch.setenv("MLXSTACK_LLAMA_SERVER", str(missing))
    monkeypatch.delenv("MLXSTACK_REQUIRE_STACK", raising=False)

    result = pytester.runpytest_subprocess("--mlx-suites=smoke", "--mlx-server-kind=llama.cpp")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [line for line in result.errlines if "llama" in line]
    assert line == (
        f"ERROR: --mlx-server-kind: llama.cpp's server {missing} (--mlx-llama-server or "
        "MLXSTACK_LLAMA_SERVER) is not an executable file; point it at a built llama-server"
    )


def test_a_folder_without_one_gguf_is_one_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "mlx-only"
    folder.mkdir()
    spec = StackSpec(
        tiers=(TierSpec(name="fast", path=folder, kind="llama.cpp"),),
        litellm=LiteLLMSpec(enabled=False),
    )
    with ServiceManager(tmp_path / "home") as manager:
        with pytest.raises(StackError) as caught:
            start_stack(spec, manager=manager, directory=tmp_path / "stack")
        assert manager.services == {}
    assert str(caught.value) == (
        f"The tier 'fast' path {folder} has no .gguf file; llama.cpp serves one GGUF file: "
        "point the tier at it"
    )


def test_settings_llama_server_manages_itself_are_refused() -> None:
    with pytest.raises(StackSpecError, match=r"--jinja.*pytest-mlxstack always passes --jinja"):
        TierSpec(name="fast", model="tiny-chat", kind="llama.cpp", flags=("--jinja",))
    with pytest.raises(StackSpecError, match=r"continuous_batching.*llama-server batches"):
        TierSpec(name="fast", model="tiny-chat", kind="llama.cpp", continuous_batching=True)


@needs_llama_server
@skip_no_openai
def test_llama_server_serves_the_fixture_gguf_and_is_gone_after(tmp_path: Path) -> None:
    spec = StackSpec(
        tiers=(TierSpec(name="fast", model="tiny-chat", kind="llama.cpp"),),
        litellm=LiteLLMSpec(enabled=False),
    )
    with ServiceManager(tmp_path / "home") as manager:
        stack = start_stack(spec, manager=manager, directory=tmp_path / "stack")
        server = stack.tier("fast")
        assert server.kind == "llama.cpp"
        assert str(fixture_model_path("tiny-chat") / "tiny-chat.gguf") in server.service.argv
        client = tier_client(stack, "fast")
        hello = client.chat.completions.create(
            model="tiny-chat",
            messages=GREETING.messages,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=32,
        )
        assert hello.choices[0].message.content == GREETING.expected_content
        call = client.chat.completions.create(
            model="tiny-chat",
            messages=weather("Tokyo").messages,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            temperature=0,
            max_tokens=96,
        )
        [tool_call] = call.choices[0].message.tool_calls or []
        assert tool_call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(tool_call.function.arguments) == {"location": "Tokyo"}  # type: ignore[union-attr]
        pid, port = server.service.pid, server.port
        stack.down()
    assert live_pids([pid]) == []
    assert bindable(port)


@needs_llama_server
@skip_no_openai
def test_the_smoke_suite_records_llama_cpp_rows(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in smoke suite on tiny-chat with ``--mlx-server-kind llama.cpp``: the row
    names the server and its version, the model's own capabilities pass, and llama-server's
    faults fail attributed to it, as the fixture expectations record (so the run passes)."""
    monkeypatch.delenv("MLXSTACK_REQUIRE_STACK", raising=False)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    result = pytester.runpytest_subprocess(
        "--mlx-suites=smoke",
        "--mlx-server-kind=llama.cpp",
        "--mlx-models=tiny-chat",
        f"--mlx-matrix-dir={pytester.path / 'matrices'}",
        timeout=600,
    )
    matrix = json.loads((pytester.path / "matrices" / "latest.json").read_text())
    [row] = matrix["rows"]
    assert (row["model"], row["server"]) == ("tiny-chat", "llama.cpp")
    assert row["server_version"] == LLAMA_CPP.version()
    cells = {cell["capability"]: cell for cell in row["cells"]}
    failed = {
        name: cell["attribution"] for name, cell in cells.items() if cell["verdict"] != "pass"
    }
    assert failed == {
        "tool_choice_none": "server_error",
        "tool_choice_named": "server_error",
        "responses_api": "server_error",
        "messages_api": "server_error",
    }, {name: cells[name]["reason"] for name in failed}
    for name in ("inference", "thinking", "tool_calling", "tool_result", "parallel_tool_calls"):
        assert cells[name]["verdict"] == "pass", cells[name]["reason"]
    assert result.ret == 0
