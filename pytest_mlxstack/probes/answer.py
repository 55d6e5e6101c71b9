"""One assistant answer in a plain shape, whether it came whole or as streamed deltas.

Servers name the reasoning field differently (vllm-mlx and LiteLLM send
``reasoning_content``, newer vLLM and some proxies ``reasoning``); both are read, and the
evidence says which one carried it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pytest_mlxstack.probes.exchange import excerpt

REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass
class ToolCall:
    name: str
    arguments: str
    id: str | None = None


@dataclass
class Answer:
    content: str = ""
    reasoning: str | None = None
    reasoning_field: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    content_chunks: int = 0  # streamed chunks that carried content (0 when not streamed)
    chunks: int = 0

    def evidence(self) -> dict[str, Any]:
        """The answer as response evidence (text cut to excerpts)."""
        shown: dict[str, Any] = {
            "content": excerpt(self.content),
            "finish_reason": self.finish_reason,
        }
        if self.reasoning is not None:
            shown["reasoning"] = excerpt(self.reasoning)
            shown["reasoning_field"] = self.reasoning_field
        if self.tool_calls:
            shown["tool_calls"] = [
                {"name": call.name, "arguments": excerpt(call.arguments, 300)}
                for call in self.tool_calls
            ]
        if self.chunks:
            shown["chunks"] = self.chunks
            shown["content_chunks"] = self.content_chunks
        return shown


def _reasoning_of(obj: Any) -> tuple[str | None, str | None]:
    for name in REASONING_FIELDS:
        value = getattr(obj, name, None)
        if isinstance(value, str):
            return value, name
    return None, None


def from_completion(completion: ChatCompletion) -> Answer:
    """The first choice of a non-streamed completion."""
    answer = Answer()
    if completion.usage is not None:
        answer.prompt_tokens = completion.usage.prompt_tokens
        answer.completion_tokens = completion.usage.completion_tokens
        answer.total_tokens = completion.usage.total_tokens
    if not completion.choices:
        return answer
    choice = completion.choices[0]
    message = choice.message
    answer.finish_reason = choice.finish_reason
    answer.content = message.content or ""
    answer.reasoning, answer.reasoning_field = _reasoning_of(message)
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is not None:
            answer.tool_calls.append(
                ToolCall(name=function.name or "", arguments=function.arguments or "", id=call.id)
            )
    return answer


def from_chunks(chunks: list[ChatCompletionChunk]) -> Answer:
    """Deltas assembled the way OpenAI clients do: text concatenated, tool calls by index."""
    answer = Answer(chunks=len(chunks))
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.usage is not None:
            answer.prompt_tokens = chunk.usage.prompt_tokens
            answer.completion_tokens = chunk.usage.completion_tokens
            answer.total_tokens = chunk.usage.total_tokens
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.content:
                content.append(delta.content)
                answer.content_chunks += 1
            text, name = _reasoning_of(delta)
            if text:
                reasoning.append(text)
                answer.reasoning_field = name
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = slot["id"] or call.id
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                answer.finish_reason = choice.finish_reason
    answer.content = "".join(content)
    answer.reasoning = "".join(reasoning) if reasoning else None
    answer.tool_calls = [
        ToolCall(name=slot["name"], arguments=slot["arguments"], id=slot["id"])
        for _, slot in sorted(calls.items())
    ]
    return answer
