"""Evidence as a person reads it: the request's messages as a transcript, the response's fields
as labelled values, long text in blocks; the raw JSON stays available underneath.

Evidence is free-form (each probe adds its own keys), so the view is generic: scalars inline,
long or multi-line text as a block, a nested object as a titled group, anything deeper as JSON.
Every value stays plain text; the template escapes it (model output is untrusted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BLOCK_KEYS = frozenset({"content", "reasoning_content", "body", "text", "answer", "error"})
INLINE_LIMIT = 80


@dataclass
class Field:
    """One labelled value; ``block`` text keeps its line breaks in a box of its own."""

    label: str
    text: str = ""
    block: bool = False
    children: list[Field] = field(default_factory=list)


@dataclass
class Message:
    role: str
    content: str
    extra: str = ""  # tool calls and other keys, as JSON


@dataclass
class EvidenceSections:
    messages: list[Message]
    request: list[Field]
    response: list[Field]


def evidence_sections(evidence: dict[str, Any]) -> EvidenceSections:
    """The request and response of ``evidence`` (an ``EvidenceRecord`` dumped to JSON)."""
    request = dict(evidence.get("request") or {})
    raw_messages = request.pop("messages", None)
    messages = _messages(raw_messages) if isinstance(raw_messages, list) else []
    if raw_messages is not None and not messages:
        request["messages"] = raw_messages
    response = evidence.get("response") or {}
    return EvidenceSections(
        messages=messages,
        request=_fields(request, depth=0),
        response=_fields(response, depth=0) if isinstance(response, dict) else [],
    )


def _messages(raw: list[Any]) -> list[Message]:
    messages = []
    for item in raw:
        if not isinstance(item, dict):
            return []
        rest = {key: value for key, value in item.items() if key not in ("role", "content")}
        content = item.get("content")
        messages.append(
            Message(
                role=str(item.get("role", "?")),
                content=content if isinstance(content, str) else _json(content),
                extra=_json(rest) if rest else "",
            )
        )
    return messages


def _fields(data: dict[str, Any], *, depth: int) -> list[Field]:
    fields = []
    for key, value in data.items():
        label = str(key)
        if isinstance(value, dict) and value and depth == 0:
            fields.append(Field(label=label, children=_fields(value, depth=depth + 1)))
        elif isinstance(value, str):
            block = label in BLOCK_KEYS or "\n" in value or len(value) > INLINE_LIMIT
            fields.append(Field(label=label, text=_pretty(value) if block else value, block=block))
        elif isinstance(value, list) and all(_scalar(item) for item in value):
            text = ", ".join(_text(item) for item in value)
            fields.append(Field(label=label, text=text, block=len(text) > INLINE_LIMIT))
        elif _scalar(value):
            fields.append(Field(label=label, text=_text(value)))
        else:
            fields.append(Field(label=label, text=_json(value), block=True))
    return fields


def _pretty(text: str) -> str:
    """A JSON document inside a string (an error body) is shown indented."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return _json(json.loads(stripped))
        except ValueError:
            return text
    return text


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
