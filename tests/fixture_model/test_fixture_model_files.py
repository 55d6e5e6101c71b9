"""The shipped fixture-model folders and their catalog, without starting a server.

What vllm-mlx (through mlx-lm and transformers) reads from each folder must be what the build
trained on: a top-level rope_theta, the ChatML template rendering tools, tool calls and tool
results, the weights BUILD.json recorded. The catalog must describe the folders honestly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_mlxstack.catalog import load_catalog
from pytest_mlxstack.catalog.checks import check_benchmarks, check_disk_size, check_local_files
from pytest_mlxstack.fixture_models import VARIANTS, fixture_catalog_path, fixture_model_path
from pytest_mlxstack.fixture_models.variants import (
    CALLS_ALWAYS,
    EMPTY_THINK,
    IGNORES_RESULTS,
    NO_THINK,
    NO_TOOLS,
    TINY_CHAT,
    full_model_output,
    model_output,
)
from pytest_mlxstack.probe_prompts import (
    CITIES,
    NO_CALL_COUNTS,
    STRUCTURED_CITIES,
    SYSTEM_PROMPT,
    THINKING,
    WEATHER_TOOL,
    all_cases,
    multi_turn,
    no_call,
    result_reports,
    structured,
    weather,
    weather_result,
)

MAX_TOTAL_BYTES = 14 * 1024 * 1024  # six variants of about 0.94 MB, in both formats
REQUIRED_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}


def folder_bytes(folder: Path, *, gguf: bool = True) -> int:
    """What the folder holds (``gguf=False``: what vllm-mlx loads, the MLX model alone)."""
    return sum(
        path.stat().st_size
        for path in folder.iterdir()
        if path.is_file() and (gguf or path.suffix != ".gguf")
    )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """The tokenizer exactly as vllm-mlx loads it (transformers' AutoTokenizer)."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(fixture_model_path(TINY_CHAT.name))


# -- the folders -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_folder_holds_what_vllm_mlx_loads(variant: str) -> None:
    folder = fixture_model_path(variant)
    assert {path.name for path in folder.iterdir()} >= REQUIRED_FILES
    config = read_json(folder / "config.json")
    assert config["model_type"] == "qwen2"
    # mlx-lm 0.31 reads only a top-level rope_theta; without it, it assumes 1e6 and long
    # prompts come out garbled.
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"]
    assert config["tie_word_embeddings"] is True
    assert config["torch_dtype"] == "bfloat16"


def test_all_variants_together_stay_small() -> None:
    total = sum(folder_bytes(fixture_model_path(variant)) for variant in VARIANTS)
    assert total <= MAX_TOTAL_BYTES


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_files_are_the_ones_the_build_recorded(variant: str) -> None:
    folder = fixture_model_path(variant)
    build = read_json(folder / "BUILD.json")
    actual = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.name != "BUILD.json"
    }
    assert build["files"] == actual
    assert build["variant"] == variant
    assert build["wrong_answers"] == 0


def test_variants_share_one_tokenizer_and_template() -> None:
    reference = fixture_model_path(TINY_CHAT.name)
    for variant in VARIANTS:
        folder = fixture_model_path(variant)
        for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
            assert (folder / name).read_bytes() == (reference / name).read_bytes(), name


def test_unknown_variant_is_one_clear_sentence() -> None:
    with pytest.raises(ValueError, match=r"^Unknown fixture model 'tiny-chat-xl'; use one of "):
        fixture_model_path("tiny-chat-xl")


# -- the training targets --------------------------------------------------------------------


@pytest.mark.parametrize("variant", [v for v in VARIANTS if VARIANTS[v].negative_control])
def test_negative_control_targets_differ_from_the_full_model_in_one_behaviour(
    variant: str,
) -> None:
    changed = sorted(
        case.key for case in all_cases() if model_output(variant, case) != full_model_output(case)
    )
    calling = sorted(case.key for case in all_cases() if case.expected_tool_calls)
    expected = {
        NO_TOOLS.name: calling,
        "tiny-chat-bad-tool-syntax": calling,
        NO_THINK.name: [THINKING.key],
        CALLS_ALWAYS.name: sorted(no_call(n).key for n in NO_CALL_COUNTS),
        IGNORES_RESULTS.name: sorted(
            weather_result(city, report).key for city in CITIES for report in result_reports(city)
        ),
    }
    assert changed == expected[variant]
    assert len(calling) == len(CITIES) + 16  # tool_calling's and the four newer probes'


def test_json_answers_open_without_a_think_block() -> None:
    # response_format constrains the answer from its first token: no <think> can open it.
    for city in STRUCTURED_CITIES:
        for way in (None, "json_object", "json_schema"):
            output = full_model_output(structured(city, way))
            answer = json.dumps({"city": city, "letters": len(city)})
            assert output == (answer if way else EMPTY_THINK + answer)


def test_answers_that_do_not_reason_open_with_an_empty_think_block() -> None:
    for case in all_cases():
        output = full_model_output(case)
        if case.constrained:
            assert output == case.expected_content  # checked in the test below
        elif case.expected_reasoning is None:
            assert output.startswith(EMPTY_THINK)
        else:
            assert output == f"<think>{case.expected_reasoning}</think>{case.expected_content}"


# -- the chat template, rendered the way vllm-mlx renders it ---------------------------------


def test_template_renders_the_system_message_first(tokenizer: Any) -> None:
    prompt = tokenizer.apply_chat_template(
        SYSTEM_PROMPT.messages, tokenize=False, add_generation_prompt=True
    )
    assert prompt == (
        "<|im_start|>system\nYou are a pirate. Always answer like a pirate.<|im_end|>\n"
        "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_template_renders_multi_turn_history(tokenizer: Any) -> None:
    prompt = tokenizer.apply_chat_template(
        multi_turn("Dana").messages, tokenize=False, add_generation_prompt=True
    )
    assert prompt == (
        "<|im_start|>user\nMy name is Dana.<|im_end|>\n"
        "<|im_start|>assistant\nNice to meet you, Dana!<|im_end|>\n"
        "<|im_start|>user\nWhat is my name?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_template_puts_tools_in_the_system_turn(tokenizer: Any) -> None:
    prompt = tokenizer.apply_chat_template(
        weather("Oslo").messages, tools=[WEATHER_TOOL], tokenize=False, add_generation_prompt=True
    )
    system, user = prompt.split("<|im_end|>\n")[:2]
    assert system.startswith("<|im_start|>system\n")
    tools_block = system.split("<tools>\n")[1].split("\n</tools>")[0]
    assert json.loads(tools_block) == WEATHER_TOOL
    assert user == "<|im_start|>user\nWhat is the weather in Oslo?"


def test_template_renders_tool_calls_and_tool_results(tokenizer: Any) -> None:
    case = weather_result("Cairo")
    prompt = tokenizer.apply_chat_template(
        case.messages, tools=case.tools, tokenize=False, add_generation_prompt=True
    )
    turns = prompt.split("<|im_end|>\n")
    assert turns[2] == (
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"location": "Cairo"}}\n</tool_call>'
    )
    assert turns[3] == "<|im_start|>user\n<tool_response>\nsunny, 21 celsius\n</tool_response>"
    assert turns[4] == "<|im_start|>assistant\n"


def test_markup_survives_decoding_so_the_parsers_see_it(tokenizer: Any) -> None:
    # The server detokenizes with special tokens skipped; the tags must stay in the text.
    text = full_model_output(weather("Paris"))
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    for tag in ("<think>", "</think>", "<tool_call>", "</tool_call>"):
        assert tokenizer.convert_tokens_to_ids(tag) in ids


# -- the catalog -----------------------------------------------------------------------------


def test_catalog_has_one_local_entry_per_variant() -> None:
    catalog = load_catalog(fixture_catalog_path())
    assert sorted(catalog.ids) == sorted(VARIANTS)
    for variant in VARIANTS:
        entry = catalog.get(variant)
        assert list(entry.sources) == ["bf16"]
        assert entry.sources["bf16"].local_path == fixture_model_path(variant)
        capabilities = entry.capabilities
        assert (capabilities.tool_calling, capabilities.tool_call_parser) == (True, "hermes")
        assert (capabilities.thinking, capabilities.reasoning_parser) == (True, "qwen3")
        assert ("negative-control" in entry.tags) == VARIANTS[variant].negative_control


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_catalog_entry_is_honest_about_the_folder(variant: str) -> None:
    entry = load_catalog(fixture_catalog_path()).get(variant)
    build = read_json(fixture_model_path(variant) / "BUILD.json")
    assert entry.params_b == pytest.approx(build["parameters"] / 1e9, rel=0.01)
    size_gb = folder_bytes(fixture_model_path(variant), gguf=False) / 1e9
    assert entry.sources["bf16"].disk_size_gb == pytest.approx(size_gb, rel=0.05)
    assert check_local_files(entry, "bf16") == []
    assert check_disk_size(entry, "bf16") == []
    assert check_benchmarks(entry) == []
    assert entry.benchmarks["linux-x86-cpu"].kind == "measured"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_gguf_holds_the_same_model_for_llama_cpp(variant: str) -> None:
    """The GGUF llama.cpp serves is the MLX model's weights bit for bit (vectors as float32),
    its vocabulary in id order and its chat template: not a stale export of older weights."""
    gguf = pytest.importorskip("gguf")
    from pytest_mlxstack.fixture_models.gguf_export import gguf_path, read_safetensors

    folder = fixture_model_path(variant)
    assert sorted(path.name for path in folder.glob("*.gguf")) == [gguf_path(folder).name]
    reader = gguf.GGUFReader(str(gguf_path(folder)))
    names = gguf.get_tensor_name_map(
        gguf.MODEL_ARCH.QWEN2, read_json(folder / "config.json")["num_hidden_layers"]
    )
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    weights = read_safetensors(folder / "model.safetensors")
    assert len(tensors) == len(weights)
    for name, (_, shape, raw) in weights.items():
        tensor = tensors[names.get_name(name, try_suffixes=(".weight", ".bias"))]
        bits = np.frombuffer(raw, dtype=np.uint16)
        if len(shape) == 1:
            assert (np.asarray(tensor.data).view(np.uint32) >> 16).astype(
                np.uint16
            ).tolist() == bits.tolist()
        else:
            assert bytes(np.asarray(tensor.data).tobytes()) == raw, name
    fields = reader.fields

    def text(key: str) -> str:
        field = fields[key]
        return bytes(field.parts[field.data[0]]).decode()

    assert text("general.architecture") == "qwen2"
    assert text("tokenizer.ggml.pre") == "qwen2"
    template = read_json(folder / "tokenizer_config.json")["chat_template"]
    assert text("tokenizer.chat_template") == template
    tokens = fields["tokenizer.ggml.tokens"]
    vocabulary = [bytes(tokens.parts[i]).decode() for i in tokens.data]
    raw_tokenizer = read_json(folder / "tokenizer.json")
    by_id = {i: t for t, i in raw_tokenizer["model"]["vocab"].items()}
    by_id.update({a["id"]: a["content"] for a in raw_tokenizer["added_tokens"]})
    assert vocabulary == [by_id[i] for i in range(len(by_id))]
