"""Tool-call and reasoning markup that a server's parser should have turned into structured
fields. Finding it in ``content`` means the model did the right thing and the parser did not
read it: the failure is the parser's, not the model's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# Literal markers of the tool-call syntaxes the common vllm-mlx parsers read (hermes/qwen,
# mistral, llama 3, functionary, deepseek, granite, xml-style qwen3 coder, gemma...).
TOOL_MARKERS = (
    "<tool_call>",
    "</tool_call>",
    "[TOOL_CALLS]",
    "<|tool_call|>",
    "<|python_tag|>",
    "<function=",
    "<|tool▁call▁begin|>",
    "<|tool_calls_section_begin|>",
    "<tool_calls>",
    "<|tool_call_start|>",
)
THINK_MARKERS = ("<think>", "</think>", "<thinking>", "</thinking>")


def tool_markup(text: str | None, tool_names: Iterable[str] = ()) -> list[str]:
    """The tool-call markup found in ``text``: literal markers, and JSON naming a tool."""
    if not text:
        return []
    found = [marker for marker in TOOL_MARKERS if marker in text]
    for name in tool_names:
        pattern = re.compile(r"[\"']name[\"']\s*:\s*[\"']" + re.escape(name) + r"[\"']")
        match = pattern.search(text)
        if match:
            found.append(match.group(0))
    return found


def think_markup(text: str | None) -> list[str]:
    """The reasoning markup found in ``text``."""
    if not text:
        return []
    return [marker for marker in THINK_MARKERS if marker in text]


_TAGGED_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def malformed_tool_call(text: str | None) -> str | None:
    """The body of a ``<tool_call>`` block in ``text`` that is not JSON, if there is one.

    A well-formed block left in content is the parser's miss; a block whose JSON is broken
    (cut short, unbalanced) could not be read by any parser, so the model wrote it wrong.
    """
    for body in _TAGGED_CALL.findall(text or ""):
        try:
            json.loads(body)
        except ValueError:
            return str(body)
    return None
