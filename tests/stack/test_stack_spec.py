"""Stack specs, stack files, vllm-mlx flags and the LiteLLM config: no process is started."""

from __future__ import annotations

import os
import pickle
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_mlxstack.stack.flags import (
    BATCHING_ONLY_FLAGS,
    MANAGED_FLAGS,
    ParserChoice,
    vllm_serve_args,
)
from pytest_mlxstack.stack.masterkey import MasterKey, write_key_file
from pytest_mlxstack.stack.proxy_config import ProxyRoute, write_litellm_config
from pytest_mlxstack.stack.spec import (
    StackSpec,
    StackSpecError,
    TierSpec,
    default_stack_spec,
    load_stack_file,
    stack_spec_for_models,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- stack files ------------------------------------------------------------------------------


def test_stack_file_with_two_tiers_and_litellm_settings(tmp_path: Path) -> None:
    (tmp_path / "models" / "local").mkdir(parents=True)
    path = write(
        tmp_path,
        """
catalog: ./my-catalog
tiers:
  fast:
    model: tiny-chat
    quant: bf16
  local:
    path: models/local
    served_name: my-local
    port: 18123
    continuous_batching: true
    paged_cache: true
    flags: ["--max-tokens", 256]
    tool_call_parser: hermes
litellm:
  port: auto
  request_timeout: 30
""",
    )
    spec = load_stack_file(path)
    assert spec.tier_names == ["fast", "local"]
    assert spec.catalog == tmp_path / "my-catalog"
    fast, local = spec.tiers
    assert (fast.model, fast.quant, fast.port) == ("tiny-chat", "bf16", None)
    assert local.path == tmp_path / "models" / "local"
    assert local.port == 18123
    assert local.flags == ("--max-tokens", "256")
    assert local.continuous_batching
    assert local.paged_cache
    assert spec.litellm.enabled
    assert spec.litellm.port is None
    assert spec.litellm.request_timeout == 30.0


@pytest.mark.parametrize(
    ("text", "field", "fix"),
    [
        ("tiers: {fast: {model: tiny-chat, colour: red}}", "tiers.fast.colour", "use one of"),
        ("tiers: {fast: {}}", "tiers.fast.model", "give a catalog model id"),
        ("tiers: {fast: {model: a, path: b}}", "tiers.fast.path", "give a catalog model id"),
        ("tiers: {fast: {model: a, port: 80}}", "tiers.fast.port", "1024-65535 or auto"),
        ("tiers: {fast: {model: a, port: eighty}}", "tiers.fast.port", "give a number"),
        ("tiers: {Fast!: {model: a}}", "tiers.Fast!", "lower-case letters"),
        ("tiers: {litellm: {model: a}}", "tiers.litellm", "not 'litellm'"),
        ("tiers: {fast: {model: a, paged_cache: true}}", "tiers.fast.paged_cache", "continuous"),
        (
            "tiers: {fast: {model: a, flags: ['--use-paged-cache']}}",
            "tiers.fast.flags",
            "continuous_batching: true",
        ),
        (
            "tiers: {fast: {model: a, flags: ['--port', '9000']}}",
            "tiers.fast.flags",
            "set the tier's port instead",
        ),
        ("tiers: {fast: {model: a, flags: --max-tokens}}", "tiers.fast.flags", "list"),
        (
            "tiers: {fast: {model: a, tool_call_parser: hermes}}",
            "tiers.fast.tool_call_parser",
            "catalog entry",
        ),
        ("tiers: {fast: {path: x, quant: int4}}", "tiers.fast.quant", "remove quant"),
        ("tiers: {fast: {model: a, continuous_batching: yes please}}", "tiers.fast", "true"),
        (
            "tiers: {a: {model: m, port: 18000}, b: {model: m, port: 18000}}",
            "tiers",
            "own port",
        ),
        ("tiers: []", "tiers", "tiers: {fast:"),
        ("tiers: {fast: {model: a}}\nlitellm: {port: 1}", "litellm.port", "1024-65535"),
        ("tiers: {fast: {model: a}}\nlitellm: {timeout: 3}", "litellm.timeout", "use one of"),
        ("tiers: {fast: {model: a}}\nlitellm: {request_timeout: 0}", "litellm.request", "seconds"),
        ("tiers: {fast: {model: a}}\nmodels: []", "models", "use one of"),
    ],
)
def test_broken_stack_file_is_one_sentence_naming_file_and_field(
    tmp_path: Path, text: str, field: str, fix: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StackSpecError) as info:
        load_stack_file(path)
    message = str(info.value)
    assert message.startswith(f"Stack file {path}, field '{field}")
    assert fix in message
    assert message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tiers: {fast: [model: a", "is not valid YAML at the end of the file (line 1)"),
        ("tiers:\n  fast: {model: a\n  slow: b\n", "is not valid YAML at line 3, column 7"),
        ("tiers: {}\n---\ntiers: {}\n", "holds a second YAML document (the '---' at line 2)"),
        ("[" * 100_000, "nests lists or mappings too deeply"),
        ("- just\n- a list\n", "is not a mapping"),
        ("", "is not a mapping"),
    ],
)
def test_unreadable_stack_file_is_one_sentence(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StackSpecError, match=re.escape(f"Stack file {path}: {problem}")):
        load_stack_file(path)


def test_missing_stack_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(StackSpecError, match=r"nowhere\.yaml: does not exist; pass the path"):
        load_stack_file(tmp_path / "nowhere.yaml")


def test_default_stack_is_tier_fast_on_the_fixture_model() -> None:
    spec = default_stack_spec()
    assert [(t.name, t.model) for t in spec.tiers] == [("fast", "tiny-chat")]
    assert spec.litellm.enabled


def test_models_from_the_command_line_become_tiers_named_after_them() -> None:
    spec = stack_spec_for_models(["tiny-chat", "Qwen3-8B:int8"])
    assert [(t.name, t.model, t.quant) for t in spec.tiers] == [
        ("tiny-chat", "tiny-chat", None),
        ("qwen3-8b", "Qwen3-8B", "int8"),
    ]


def test_the_same_tier_twice_is_refused() -> None:
    with pytest.raises(StackSpecError, match="names tier 'fast' twice"):
        StackSpec(tiers=(TierSpec("fast", model="a"), TierSpec("fast", model="b")))


# -- vllm-mlx flags ---------------------------------------------------------------------------


def test_flags_follow_the_capabilities() -> None:
    both = vllm_serve_args(parsers=ParserChoice("hermes", "qwen3"))
    assert both == (
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--reasoning-parser",
        "qwen3",
    )
    assert vllm_serve_args(parsers=ParserChoice()) == ()
    assert vllm_serve_args(parsers=ParserChoice(reasoning_parser="qwen3")) == (
        "--reasoning-parser",
        "qwen3",
    )


def test_paged_cache_comes_with_continuous_batching() -> None:
    args = vllm_serve_args(
        parsers=ParserChoice(),
        continuous_batching=True,
        paged_cache=True,
        extra=("--prefix-cache-size", "10"),
    )
    assert args == ("--continuous-batching", "--use-paged-cache", "--prefix-cache-size", "10")


@pytest.fixture(scope="module")
def vllm_serve_help() -> str:
    pytest.importorskip("vllm_mlx", reason="vllm-mlx is not installed (the stack extra)")
    script = Path(sys.executable).parent / "vllm-mlx"
    done = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def test_every_flag_we_write_or_police_exists_in_the_installed_vllm_mlx(
    vllm_serve_help: str,
) -> None:
    known = set(re.findall(r"(--[a-z][a-z0-9-]*)", vllm_serve_help))
    ours = set(vllm_serve_args(parsers=ParserChoice("hermes", "qwen3"), continuous_batching=True))
    ours |= {"--use-paged-cache", "--served-model-name", "--host", "--port"}
    ours |= BATCHING_ONLY_FLAGS | set(MANAGED_FLAGS)
    flags = {flag for flag in ours if flag.startswith("--")}
    assert flags - known == set()


# -- LiteLLM config and the master key ----------------------------------------------------------


def test_litellm_config_routes_each_tier_without_retries_and_with_timeouts(
    tmp_path: Path,
) -> None:
    routes = [ProxyRoute("fast", "tiny-chat", 18001), ProxyRoute("big", "qwen3-8b", 18002)]
    path = write_litellm_config(tmp_path / "litellm.yaml", routes, request_timeout=42)
    config = yaml.safe_load(path.read_text())
    assert config["model_list"][0] == {
        "model_name": "fast",
        "litellm_params": {
            "model": "openai/tiny-chat",
            "api_base": "http://127.0.0.1:18001/v1",
            "api_key": "dummy",
            "timeout": 42,
            "stream_timeout": 42,
            "max_retries": 0,
        },
    }
    assert config["model_list"][1]["model_name"] == "big"
    assert config["litellm_settings"]["num_retries"] == 0
    assert config["router_settings"] == {
        "num_retries": 0,
        "timeout": 42,
        "disable_cooldowns": True,
    }
    assert "master_key" not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["litellm.yaml"]  # no temporary left


def test_master_key_is_random_and_never_in_its_text_forms() -> None:
    first, second = MasterKey.generate(), MasterKey.generate()
    assert first != second
    assert first.reveal().startswith("sk-")
    assert len(first.reveal()) > 40
    for text in (repr(first), str(first), f"{first}", repr([first])):
        assert first.reveal() not in text
    with pytest.raises(TypeError):
        pickle.dumps(first)


def test_key_file_is_private_from_creation(tmp_path: Path) -> None:
    key = MasterKey.generate()
    path = write_key_file(tmp_path / "stack" / "master-key", key)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert MasterKey(path.read_text(encoding="utf-8").strip()) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["master-key"]


def test_a_stack_file_that_is_a_pipe_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    os.mkfifo(path)  # nobody writes: reading it would wait forever
    with pytest.raises(StackSpecError, match=r"stack\.yaml: is a named pipe, not a regular file"):
        load_stack_file(path)
