#!/usr/bin/env python3
"""Build and train the fixture models in ``pytest_mlxstack/fixture_models/`` (deterministic).

Each variant is a 2-layer ``qwen2`` model (mlx-lm's architecture, bfloat16 safetensors) with a
byte-level BPE vocabulary trained on the chats themselves and a ChatML chat template in the
Qwen2.5/hermes style. Training runs with torch on the CPU through transformers'
``Qwen2ForCausalLM`` until greedy decoding reproduces every probe answer of
``pytest_mlxstack.probe_prompts.all_cases()`` (or the negative control's deviation from it).

Two things make the served model behave like the trained one (both learnt the hard way):
- ``config.json`` is written before the tokenizer is loaded back with ``AutoTokenizer``, because
  transformers picks the tokenizer class from the model type; every training chat is rendered
  by that tokenizer's own ``apply_chat_template``, as vllm-mlx does, so training ids equal
  serving ids (checked below against the raw ``tokenizers`` object);
- ``rope_theta`` is written at the top level of ``config.json`` (mlx-lm 0.31 ignores the
  nested ``rope_parameters`` transformers 5 writes, and would assume 1,000,000).

Every chat is rendered as vllm-mlx renders it (``probe_prompts.served_chat``: the instruction
it injects for a forced ``tool_choice`` or a ``response_format``). ``tiny-chat`` is trained from
scratch; each negative control starts from its weights and changes its few answers.

Usage: ``.venv/bin/python scripts/build_fixture_models.py [--variant NAME]... [--out DIR]``;
``--refresh-files`` only writes each built variant's chat template and GGUF again, without
training (the GGUF is for llama.cpp's server, see ``pytest_mlxstack.fixture_models.gguf_export``).
Fixed seeds, a fixed thread count and one full batch per step make rebuilds reproducible;
``BUILD.json`` in each folder records the parameters, the final loss and content hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The torchvision wheel that vllm-mlx pulls in does not load against the CPU torch here
# ("operator torchvision::nms does not exist"), and transformers imports it eagerly for its
# image utilities; a text model needs none of it, so keep it out.
sys.modules.setdefault("torchvision", None)  # type: ignore[arg-type]

from pytest_mlxstack.fixture_models import VARIANTS, fixture_model_path  # noqa: E402
from pytest_mlxstack.fixture_models.variants import model_output  # noqa: E402
from pytest_mlxstack.fixture_models.gguf_export import gguf_path, write_gguf  # noqa: E402
from pytest_mlxstack.probe_prompts import Message, all_cases, served_chat  # noqa: E402

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Markup the parsers look for: whole tokens (as in Qwen2.5/Qwen3), never special, so that
# decoding with skip_special_tokens keeps them in the text the parsers read.
MARKUP_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<tools>",
    "</tools>",
)
# transformers 5's Qwen2Tokenizer rebuilds its pre-tokenizer with this regex whatever
# tokenizer.json says, so the BPE is trained with the same one (digits split one by one).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# An assistant turn's reasoning_content is rendered in the model's own <think>...</think>
# format, as Qwen3's template does: servers that learn the reasoning markup from the template
# (llama.cpp) find it there. No probe sends reasoning back, so the probe prompts are unchanged.
CHAT_TEMPLATE = """\
{%- macro text(content) -%}
  {%- if content is string -%}{{ content }}
  {%- elif content -%}{%- for part in content -%}{{ part.text or '' }}{%- endfor -%}
  {%- endif -%}
{%- endmacro -%}
{%- if tools %}
  {{- '<|im_start|>system\\n' }}
  {%- if messages[0].role == 'system' %}{{- text(messages[0].content) + '\\n\\n' }}{%- endif %}
  {{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n' }}
  {{- 'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
  {%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
  {{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and ' }}
  {{- 'arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n' }}
  {{- '{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
  {{- '<|im_start|>system\\n' + text(messages[0].content) + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
  {%- if message.role == 'system' %}
    {%- if not loop.first %}
      {{- '<|im_start|>system\\n' + text(message.content) + '<|im_end|>\\n' }}
    {%- endif %}
  {%- elif message.role == 'user' %}
    {{- '<|im_start|>user\\n' + text(message.content) + '<|im_end|>\\n' }}
  {%- elif message.role == 'assistant' and not message.tool_calls %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if message.reasoning_content is string and message.reasoning_content %}
      {{- '<think>' + message.reasoning_content + '</think>' }}
    {%- endif %}
    {{- text(message.content) + '<|im_end|>\\n' }}
  {%- elif message.role == 'assistant' %}
    {{- '<|im_start|>assistant' }}
    {%- if message.content %}{{- '\\n' + text(message.content) }}{%- endif %}
    {%- for tool_call in message.tool_calls %}
      {%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
      {{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
      {%- if tool_call.arguments is string %}{{- tool_call.arguments }}
      {%- else %}{{- tool_call.arguments | tojson }}{%- endif %}
      {{- '}\\n</tool_call>' }}
    {%- endfor %}
    {{- '<|im_end|>\\n' }}
  {%- elif message.role == 'tool' %}
    {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
      {{- '<|im_start|>user' }}
    {%- endif %}
    {{- '\\n<tool_response>\\n' + text(message.content) + '\\n</tool_response>' }}
    {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
      {{- '<|im_end|>\\n' }}
    {%- endif %}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


@dataclass(frozen=True)
class BuildParams:
    """Everything that decides the weights; recorded in BUILD.json."""

    seed: int = 1234
    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    rope_theta: float = 10000.0
    steps: int = 800
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    # A negative control starts from tiny-chat's weights (same vocabulary, same chats but the
    # few it answers differently) and needs far fewer steps than training from scratch.
    init_from: str | None = None
    weight_decay: float = 0.0
    threads: int = 1  # one thread: on a shared machine OpenMP threads wait on each other
    dtype: str = "bfloat16"


@dataclass(frozen=True)
class Example:
    """One training chat: the prompt as the server renders it, and the answer to learn."""

    key: str
    messages: list[Message]
    tools: list[dict[str, Any]] | None
    answer: str


def examples_for(variant: str) -> list[Example]:
    """Every probe chat as the server renders it (with the instructions it injects for a
    forced tool_choice or a response_format), and ``variant``'s answer."""
    examples = []
    for case in all_cases():
        messages, tools = served_chat(case)
        examples.append(Example(case.key, messages, tools, model_output(variant, case)))
    return examples


# ---------------------------------------------------------------------------------------------
# Tokenizer


def tokenizer_config(raw: Any) -> dict[str, Any]:
    """transformers' view of the tokenizer: added tokens by id, ChatML roles, the template."""
    added = {}
    for token in SPECIAL_TOKENS + MARKUP_TOKENS:
        added[str(raw.token_to_id(token))] = {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": token in SPECIAL_TOKENS,
        }
    return {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": 1024,
        "split_special_tokens": False,
        "chat_template": CHAT_TEMPLATE,
    }


def new_tokenizer(corpus: list[str], vocab_size: int) -> Any:
    """A byte-level BPE with Qwen2's normalizer and pre-tokenizer, trained on ``corpus``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tokenizer = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS])
    return tokenizer


def render_prompt(tokenizer: Any, example: Example) -> str:
    """The prompt text exactly as vllm-mlx renders it (tools, generation prompt, thinking on)."""
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
    if example.tools:
        kwargs["tools"] = example.tools
    return str(tokenizer.apply_chat_template(example.messages, enable_thinking=True, **kwargs))


# ---------------------------------------------------------------------------------------------
# Model folder


def model_config(params: BuildParams, vocab_size: int, eos_id: int, pad_id: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=params.hidden_size,
        intermediate_size=params.intermediate_size,
        num_hidden_layers=params.num_hidden_layers,
        num_attention_heads=params.num_attention_heads,
        num_key_value_heads=params.num_key_value_heads,
        max_position_embeddings=params.max_position_embeddings,
        rope_theta=params.rope_theta,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_sliding_window=False,
    )


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def fix_config(folder: Path, params: BuildParams) -> None:
    """mlx-lm reads a top-level rope_theta; drop fields that vary between builds."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["rope_theta"] = params.rope_theta
    config["torch_dtype"] = params.dtype
    config.pop("transformers_version", None)
    write_json(path, config)


# ---------------------------------------------------------------------------------------------
# Training


def encode_examples(
    tokenizer: Any, raw: Any, examples: list[Example]
) -> list[tuple[list[int], int]]:
    """Token ids of prompt + answer + <|im_end|>, and where the answer starts.

    The ids come from the transformers tokenizer the server uses; they must equal the raw
    ``tokenizers`` object's, or the served model would see other ids than it was trained on.
    """
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    encoded = []
    for example in examples:
        prompt = render_prompt(tokenizer, example)
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        answer_ids = tokenizer.encode(example.answer, add_special_tokens=False)
        full = prompt + example.answer
        full_ids = tokenizer.encode(full, add_special_tokens=False)
        if raw.encode(full, add_special_tokens=False).ids != full_ids:
            raise SystemExit(f"{example.key}: transformers and tokenizers disagree on the ids")
        if prompt_ids + answer_ids != full_ids:
            raise SystemExit(f"{example.key}: the answer does not start on a token boundary")
        encoded.append(([*full_ids, eos], len(prompt_ids)))
    return encoded


Batch = tuple[Any, Any, Any]  # input ids, labels (-100 on the prompt), attention mask


def length_buckets(encoded: list[tuple[list[int], int]], pad_id: int) -> list[Batch]:
    """Chats grouped by length (the tool chats are 5x longer), each group padded on the right.

    All groups together are one full batch per step: the gradient is the same as with a
    single padded batch, at a fraction of the compute.
    """
    import torch

    order = sorted(encoded, key=lambda item: len(item[0]))
    groups: list[list[tuple[list[int], int]]] = []
    for item in order:
        if groups and len(item[0]) <= 1.5 * len(groups[-1][0][0]):
            groups[-1].append(item)
        else:
            groups.append([item])
    batches = []
    for group in groups:
        length = max(len(ids) for ids, _ in group)
        inputs = torch.full((len(group), length), pad_id, dtype=torch.long)
        labels = torch.full((len(group), length), -100, dtype=torch.long)
        mask = torch.zeros((len(group), length), dtype=torch.long)
        for row, (ids, answer_start) in enumerate(group):
            inputs[row, : len(ids)] = torch.tensor(ids)
            labels[row, answer_start : len(ids)] = torch.tensor(ids[answer_start:])
            mask[row, : len(ids)] = 1
        batches.append((inputs, labels, mask))
    return batches


def train(
    model: Any, encoded: list[tuple[list[int], int]], params: BuildParams, pad_id: int
) -> float:
    """Full-batch AdamW on the answers only (prompt positions masked); returns the last loss."""
    import torch

    batches = length_buckets(encoded, pad_id)
    answer_tokens = sum(len(ids) - start for ids, start in encoded)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )

    def schedule(step: int) -> float:
        if step < params.warmup_steps:
            return (step + 1) / params.warmup_steps
        progress = (step - params.warmup_steps) / max(1, params.steps - params.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    loss_value = float("nan")
    started = time.monotonic()
    for step in range(params.steps):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for inputs, labels, mask in batches:
            logits = model(input_ids=inputs, attention_mask=mask).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            (loss / answer_tokens).backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        loss_value = total / answer_tokens
        if step % 50 == 0 or step == params.steps - 1:
            elapsed = time.monotonic() - started
            print(f"  step {step:5d}  loss {loss_value:.6f}  {elapsed:6.1f}s", flush=True)
    return loss_value


def greedy_check(model: Any, tokenizer: Any, examples: list[Example]) -> tuple[list[str], float]:
    """Greedy-decode every prompt with the saved precision.

    Returns the answers that came out wrong, and the smallest gap between the right token's
    logit and the best other one along every answer: a margin that survives the small
    numerical differences between torch and mlx kernels.
    """
    import torch

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    wrong = []
    margin = math.inf
    model.eval()
    with torch.no_grad():
        for example in examples:
            ids = tokenizer.encode(render_prompt(tokenizer, example), add_special_tokens=False)
            target = [*tokenizer.encode(example.answer, add_special_tokens=False), eos]
            logits = model(input_ids=torch.tensor([ids + target])).logits[0].float()
            for position, token in enumerate(target):
                row = logits[len(ids) - 1 + position].clone()
                right = float(row[token])
                row[token] = -math.inf
                margin = min(margin, right - float(row.max()))
            generated: list[int] = []
            for _ in range(len(target) + 4):
                step_logits = model(input_ids=torch.tensor([ids + generated])).logits[0, -1]
                token = int(step_logits.float().argmax())
                if token == eos:
                    break
                generated.append(token)
            text = tokenizer.decode(generated, skip_special_tokens=False)
            if text != example.answer:
                wrong.append(f"{example.key}: {text!r}")
    return wrong, margin


# ---------------------------------------------------------------------------------------------
# Build


def content_hashes(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.name != "BUILD.json"
    }


def start_from(model: Any, source: Path, folder: Path) -> Any:
    """``model`` with the weights of the built ``source`` variant, in float32 for training;
    the vocabulary must be the one just trained (same corpus, same seed)."""
    import torch
    from safetensors.torch import load_file

    if (source / "tokenizer.json").read_text() != (folder / "tokenizer.json").read_text():
        saved = json.loads((source / "tokenizer.json").read_text())
        if saved != json.loads((folder / "tokenizer.json").read_text()):
            raise SystemExit(f"{source.name} has another vocabulary; rebuild it first")
    weights = {k: v.to(torch.float32) for k, v in load_file(source / "model.safetensors").items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise SystemExit(f"{source.name}'s weights do not fit: {missing} {unexpected}")
    model.tie_weights()
    return model


def build_variant(
    variant: str, params: BuildParams, destination: Path, *, allow_wrong: bool = False
) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    torch.manual_seed(params.seed)
    torch.set_num_threads(params.threads)
    torch.use_deterministic_algorithms(True)
    examples = examples_for(variant)
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix=f".{variant}-", dir=destination.parent) as tmp:
        folder = Path(tmp) / variant
        folder.mkdir()
        # 1. A bootstrap byte-level tokenizer renders the chats with the real template; the
        #    BPE is then trained on every chat of every variant (one vocabulary for all).
        corpus_examples = [e for name in VARIANTS for e in examples_for(name)]
        raw = new_tokenizer([], 0)
        raw.save(str(folder / "tokenizer.json"))
        write_json(folder / "tokenizer_config.json", tokenizer_config(raw))
        model_config(params, raw.get_vocab_size(), 0, 0).save_pretrained(folder)
        fix_config(folder, params)
        bootstrap = AutoTokenizer.from_pretrained(folder)
        corpus = [render_prompt(bootstrap, e) + e.answer + "<|im_end|>" for e in corpus_examples]
        raw = new_tokenizer(corpus, params.vocab_size)
        raw.save(str(folder / "tokenizer.json"))
        write_json(folder / "tokenizer_config.json", tokenizer_config(raw))

        # 2. config.json before the tokenizer is loaded back (the class follows model_type).
        vocab_size = raw.get_vocab_size()
        eos_id = raw.token_to_id("<|im_end|>")
        pad_id = raw.token_to_id("<|endoftext|>")
        config = model_config(params, vocab_size, eos_id, pad_id)
        config.save_pretrained(folder)
        fix_config(folder, params)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        encoded = encode_examples(tokenizer, raw, examples)
        longest = max(len(ids) for ids, _ in encoded)
        print(f"{variant}: vocab {vocab_size}, {len(encoded)} chats, longest {longest} tokens")

        # 3. Train in float32, save bfloat16, check greedy answers with the saved precision.
        torch.manual_seed(params.seed)
        model = Qwen2ForCausalLM(config)
        if params.init_from is not None:
            model = start_from(model, destination.parent / params.init_from, folder)
        loss = train(model, encoded, params, pad_id)
        model = model.to(getattr(torch, params.dtype))
        wrong, margin = greedy_check(model, tokenizer, examples)
        for line in wrong:
            print(f"  wrong: {line}")
        if wrong and not allow_wrong:
            raise SystemExit(f"{variant}: {len(wrong)} answers wrong after training: {wrong}")
        model.save_pretrained(folder, safe_serialization=True)
        (folder / "generation_config.json").unlink(missing_ok=True)
        fix_config(folder, params)
        # Compact JSON: a third of the pretty-printed size, same content.
        tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False))
        write_gguf(folder, folder / gguf_path(destination).name)  # for llama.cpp's server

        seconds = round(time.monotonic() - started, 1)
        n_params = sum(p.numel() for p in model.parameters())
        record = {
            "variant": variant,
            "description": VARIANTS[variant].description,
            "params": asdict(params),
            "parameters": n_params,
            "vocab_size": vocab_size,
            "longest_chat_tokens": longest,
            "training_chats": len(encoded),
            "final_loss": loss,
            "wrong_answers": len(wrong),
            "min_logit_margin": round(margin, 3),
            "build_seconds": seconds,
            "torch": torch.__version__,
            "files": content_hashes(folder),
        }
        write_json(folder / "BUILD.json", record)
        folder.chmod(0o755)  # TemporaryDirectory's 0700 and safetensors' 0600 are not for a wheel
        for path in folder.iterdir():
            path.chmod(0o644)
        # 4. Only a finished, checked folder is moved into place (by rename, on one file
        #    system); a failed or interrupted build leaves the shipped folder as it was.
        if destination.exists():
            old = Path(tmp) / "old"
            destination.rename(old)
        folder.rename(destination)
    summary = f"loss {loss:.2e}, margin {margin:.2f}, {n_params} parameters, {seconds}s"
    print(f"{variant}: {summary} -> {destination}")
    return record


def refresh_files(destination: Path) -> None:
    """Write a built variant's chat template and GGUF again from its weights and vocabulary
    (a template or exporter change that does not change what the model was trained on), and
    record the new files in its ``BUILD.json``."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(destination / "tokenizer.json"))
    write_json(destination / "tokenizer_config.json", tokenizer_config(raw))
    path = write_gguf(destination, gguf_path(destination))
    build_json = destination / "BUILD.json"
    record = json.loads(build_json.read_text(encoding="utf-8"))
    record["files"] = content_hashes(destination)
    write_json(build_json, record)
    path.chmod(0o644)
    print(f"{destination.name}: wrote {path} ({path.stat().st_size} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="repeatable")
    parser.add_argument("--steps", type=int, default=BuildParams.steps)
    parser.add_argument(
        "--control-steps",
        type=int,
        default=150,
        help="steps of a negative control, trained on from tiny-chat's weights",
    )
    parser.add_argument(
        "--allow-wrong", action="store_true", help="keep a model that misses some answers"
    )
    parser.add_argument("--out", type=Path, help="build into this folder instead of the package")
    parser.add_argument(
        "--refresh-files",
        action="store_true",
        help="only write the built variants' chat template and GGUF again (no training)",
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the temporary build folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    full = BuildParams(steps=args.steps)
    control = BuildParams(steps=args.control_steps, warmup_steps=20, init_from="tiny-chat")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # tiny-chat first: the negative controls start from its weights.
    chosen = args.variant or list(VARIANTS)
    for variant in sorted(chosen, key=lambda name: VARIANTS[name].negative_control):
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            destination = args.out / variant
        else:
            destination = fixture_model_path(variant)
        if args.refresh_files:
            refresh_files(destination)
            continue
        params = control if VARIANTS[variant].negative_control else full
        build_variant(variant, params, destination, allow_wrong=args.allow_wrong)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
