"""Shared data for the catalog tests: a valid entry to break, tiny model files, publishing."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from pytest_mlxstack.catalog.hubserver import LocalHub

TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n{% for tool in tools %}{{ tool | tojson }}\n"
    "{% endfor %}<|im_end|>\n{%- endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"
)
PLAIN_TEMPLATE = "{%- for m in messages %}{{ m.role }}: {{ m.content }}\n{%- endfor %}"

VALID_ENTRY: dict[str, Any] = {
    "id": "qwen3-8b",
    "name": "Qwen3 8B",
    "family": "Qwen3",
    "params_b": 8.2,
    "architecture": "qwen3",
    "min_mlx_lm_version": "0.24.0",
    "sources": {"int4": {"hf_repo": "mlx-community/Qwen3-8B-4bit", "disk_size_gb": 4.6}},
    "capabilities": {
        "tool_calling": True,
        "tool_call_parser": "hermes",
        "thinking": True,
        "reasoning_parser": "qwen3",
    },
    "benchmarks": {"m4-pro-48gb": {"gen_tps": 40, "memory_gb": 5.1}},
}


def entry(**changes: Any) -> dict[str, Any]:
    """A deep copy of the valid entry with top-level keys replaced (None removes a key)."""
    data = copy.deepcopy(VALID_ENTRY)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def model_files(
    template: str | None = TOOL_TEMPLATE, weights_size: int | None = None
) -> dict[str, Any]:
    """A small model's files; ``weights_size`` declares a (large) size served as zeros."""
    files: dict[str, Any] = {
        "config.json": json.dumps({"model_type": "qwen3", "hidden_size": 64}),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE"}}),
        "model.safetensors": weights_size if weights_size is not None else b"\0" * 64,
    }
    config: dict[str, Any] = {"eos_token": "<|im_end|>"}
    if template is not None:
        config["chat_template"] = template
    files["tokenizer_config.json"] = json.dumps(config)
    return files


def publish(hub: LocalHub, data: dict[str, Any], **repo_options: Any) -> None:
    """Publish every Hub source of an entry dict with matching sizes and a tool template."""
    for source in data["sources"].values():
        size = int(source["disk_size_gb"] * 1e9)
        hub.add_repo(source["hf_repo"], model_files(weights_size=size), **repo_options)
