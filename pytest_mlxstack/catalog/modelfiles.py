"""What an MLX model folder or repository must contain, judged from file names and texts.

Shared by the local-folder checks and the Hub checks so that both apply the same rules:
weights (``*.safetensors``), ``config.json``, tokenizer files and a chat template, and for a
tool-calling model a template that actually renders the ``tools`` it is given.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

import jinja2
import jinja2.ext
import jinja2.meta
import jinja2.nodes
import jinja2.parser

# Where transformers looks for a chat template, in its order of preference.
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "tokenizer_config.json")
TOKENIZER_ALTERNATIVES = (("tokenizer.json",), ("tokenizer.model",), ("vocab.json", "merges.txt"))


def weight_files(names: Collection[str]) -> list[str]:
    return sorted(n for n in names if n.endswith(".safetensors"))


def has_tokenizer(names: Collection[str]) -> bool:
    """A fast tokenizer, a sentencepiece model, or a BPE vocabulary with its merges."""
    basenames = {n.rsplit("/", 1)[-1] for n in names}
    return any(all(f in basenames for f in group) for group in TOKENIZER_ALTERNATIVES)


def template_candidates(names: Collection[str]) -> list[str]:
    """The files that may hold the chat template, best first."""
    return [f for f in TEMPLATE_FILES if f in names]


def chat_template_from(filename: str, text: str) -> str | None:
    """The chat template held by ``filename`` (None when that file has none).

    ``tokenizer_config.json`` may hold one template or a list of named ones; the named ones
    are joined so that a ``tool_use`` variant counts.
    """
    if filename.endswith(".jinja"):
        return text if text.strip() else None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    template = data.get("chat_template") if isinstance(data, dict) else None
    if isinstance(template, str):
        return template or None
    if isinstance(template, list):
        parts = [t.get("template") for t in template if isinstance(t, dict)]
        joined = "\n".join(p for p in parts if isinstance(p, str))
        return joined or None
    return None


class _GenerationTag(jinja2.ext.Extension):
    """transformers' ``{% generation %}`` block (marks assistant text); parsed as its body."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it as a plain set

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        return list(parser.parse_statements(("name:endgeneration",), drop_needle=True))


@dataclass(frozen=True)
class TemplateVerdict:
    """Whether a chat template parses and whether it reads the ``tools`` variable."""

    valid: bool
    handles_tools: bool
    error: str | None = None


def judge_template(template: str) -> TemplateVerdict:
    """Parse the template with Jinja and look for ``tools`` among the variables it reads.

    A template that never reads ``tools`` silently drops the tool definitions, so the model
    cannot call them however good its parser is.
    """
    env = jinja2.Environment(extensions=[jinja2.ext.loopcontrols, _GenerationTag])
    try:
        variables = jinja2.meta.find_undeclared_variables(env.parse(template))
    except jinja2.TemplateSyntaxError as exc:
        return TemplateVerdict(False, False, f"line {exc.lineno}: {exc.message}")
    return TemplateVerdict(True, "tools" in variables or "custom_tools" in variables)
