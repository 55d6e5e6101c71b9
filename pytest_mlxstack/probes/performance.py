"""Measure a model's speed with one streamed chat completion through the real openai client.

Time to first token is the wait until the first chunk that carries text; decode speed is the
completion tokens after the first over the time from that chunk to the end of the stream;
prompt speed is the prompt tokens over the time to first token (prefill plus one round trip, the
rate a caller sees). A server that holds text back and sends it in a few chunks (a tool-call
parser buffering its markup) would make that decode time meaninglessly short, so with fewer
than ``MIN_TEXT_CHUNKS`` text chunks decode speed is the completion tokens over the whole
request instead. Token counts come from the server's own ``usage``
(``stream_options.include_usage``); without it the rates are ``None``. One warm-up request (one
token) comes first, so a server's first-request compilation is not counted as the model's speed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai import OpenAI

PROMPT = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle. "
    "Describe the sea, the weather, the keeper and the message in detail."
)
MAX_TOKENS = 64
MIN_TEXT_CHUNKS = 4


@dataclass(frozen=True)
class Performance:
    """One measurement; every figure ``None`` when it could not be measured."""

    ttft_s: float | None = None
    decode_tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None

    def as_row_facts(self) -> dict[str, float | None]:
        """Keyword arguments for ``mlx_matrix.record_row``."""
        return asdict(self)


def measure_performance(client: OpenAI, model: str) -> Performance:
    """Stream one completion from ``model``; a request that fails measures nothing (``None``s),
    because a slow or broken server is the capability tests' verdict, not this figure's."""
    from openai import OpenAIError

    try:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=1
        )
        begun = time.perf_counter()
        first: float | None = None
        text_chunks = 0
        usage = None
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if any(_has_text(choice.delta) for choice in chunk.choices):
                text_chunks += 1
                first = first if first is not None else time.perf_counter()
        end = time.perf_counter()
    except OpenAIError:
        return Performance()
    if first is None:
        return Performance()
    ttft = first - begun
    prompt_tokens = getattr(usage, "prompt_tokens", None)
    completion_tokens = getattr(usage, "completion_tokens", None)
    decode = None
    if completion_tokens and completion_tokens > 1:
        if text_chunks >= MIN_TEXT_CHUNKS and end > first:
            decode = round((completion_tokens - 1) / (end - first), 1)
        elif end > begun:
            decode = round(completion_tokens / (end - begun), 1)
    prompt = round(prompt_tokens / ttft, 1) if prompt_tokens and ttft > 0 else None
    return Performance(
        ttft_s=round(ttft, 4), decode_tokens_per_s=decode, prompt_tokens_per_s=prompt
    )


def _has_text(delta: Any) -> bool:
    """A chunk that carries generated text: content, reasoning or a tool call."""
    if delta is None:
        return False
    reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
    return bool(delta.content or reasoning or delta.tool_calls)
