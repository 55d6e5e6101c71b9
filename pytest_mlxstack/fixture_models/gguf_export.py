"""Write a fixture model as one GGUF file, the format llama.cpp's ``llama-server`` serves.

llama.cpp's own converter (``convert_hf_to_gguf.py``) ships only in its source tree and refuses
the fixture vocabulary (its pre-tokenizer hash is unknown). The fixture models are one small,
known architecture (``qwen2``), so this writes what that converter writes for Qwen2, with the
``gguf`` package: the same tensor names, hyper-parameters, the byte-level BPE vocabulary with
its merges declared as the ``qwen2`` pre-tokenizer (its split regex and NFC normaliser are
Qwen2's), the special tokens and the chat template. The bfloat16 weights are copied bit for
bit; one-dimensional tensors (norms, biases) become float32, as the converter does.

``write_gguf(folder, path)`` needs the ``gguf`` package (``pip install gguf``, in the ``dev``
extra); nothing else in the plugin imports this module.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

GGUF_SUFFIX = ".gguf"
ARCHITECTURE = "qwen2"
PRE_TOKENIZER = "qwen2"
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4


class GgufExportError(ValueError):
    """A folder this exporter cannot turn into a GGUF (another architecture, another dtype)."""


def gguf_path(folder: Path) -> Path:
    """Where the builder writes a variant's GGUF: inside its folder, named after it."""
    return folder / f"{folder.name}{GGUF_SUFFIX}"


def read_safetensors(path: Path) -> dict[str, tuple[str, list[int], bytes]]:
    """Each tensor's dtype, shape and raw bytes (numpy has no bfloat16 to load them into)."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + size])
    tensors = {}
    for name, info in header.items():
        if name != "__metadata__":
            start, end = (8 + size + offset for offset in info["data_offsets"])
            tensors[name] = (str(info["dtype"]), list(info["shape"]), data[start:end])
    return tensors


def _tensor(dtype: str, shape: list[int], raw: bytes) -> tuple[np.ndarray[Any, Any], Any]:
    """The array to write and its GGML type: bf16 kept as raw bf16 bytes, vectors as float32."""
    import gguf

    if dtype != "BF16":
        raise GgufExportError(f"tensor dtype {dtype} is not bfloat16, the fixture models' dtype")
    bits = np.frombuffer(raw, dtype=np.uint16).reshape(shape)
    if len(shape) <= 1:
        return (bits.astype(np.uint32) << 16).view(np.float32), None
    as_bytes = bits.view(np.uint8).reshape([*shape[:-1], shape[-1] * 2])
    return as_bytes, gguf.GGMLQuantizationType.BF16


def write_gguf(folder: Path, path: Path | None = None) -> Path:
    """Write ``folder`` (a fixture model: ``config.json``, ``model.safetensors``,
    ``tokenizer.json``, ``tokenizer_config.json``) as one GGUF file; returns its path."""
    import gguf

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != ARCHITECTURE:
        raise GgufExportError(f"{folder}: model_type {config.get('model_type')!r} is not qwen2")
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    path = path or gguf_path(folder)
    layers = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(path), ARCHITECTURE)
    writer.add_name(folder.name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(layers)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config["num_key_value_heads"]))
    writer.add_rope_freq_base(float(config["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    _add_vocabulary(writer, tokenizer, tokenizer_config, int(config["vocab_size"]))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, layers)
    for name, (dtype, shape, raw) in sorted(read_safetensors(folder / "model.safetensors").items()):
        if name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise GgufExportError(f"{folder}: no GGUF name for tensor {name!r}")
        array, raw_dtype = _tensor(dtype, shape, raw)
        writer.add_tensor(mapped, array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_vocabulary(
    writer: Any, tokenizer: dict[str, Any], tokenizer_config: dict[str, Any], vocab_size: int
) -> None:
    """Tokens by id (added tokens: control when special, else user-defined), merges, the
    special token ids and the chat template, as the converter's ``gpt2`` vocabulary does."""
    model = tokenizer["model"]
    if model.get("type") != "BPE":
        raise GgufExportError(f"tokenizer model {model.get('type')!r} is not a byte-level BPE")
    tokens: dict[int, tuple[str, int]] = {
        int(i): (text, TOKEN_NORMAL) for text, i in model["vocab"].items()
    }
    for added in tokenizer["added_tokens"]:
        kind = TOKEN_CONTROL if added["special"] else TOKEN_USER_DEFINED
        tokens[int(added["id"])] = (added["content"], kind)
    if sorted(tokens) != list(range(vocab_size)):
        raise GgufExportError(f"token ids do not cover 0..{vocab_size - 1} exactly")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list([tokens[i][0] for i in range(vocab_size)])
    writer.add_token_types([tokens[i][1] for i in range(vocab_size)])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    writer.add_token_merges(merges)
    ids = {text: i for i, (text, _) in tokens.items()}
    writer.add_eos_token_id(ids[tokenizer_config["eos_token"]])
    writer.add_pad_token_id(ids[tokenizer_config.get("pad_token") or "<|endoftext|>"])
    writer.add_bos_token_id(ids["<|endoftext|>"])  # Qwen2's converter output: never added
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer_config["chat_template"])
