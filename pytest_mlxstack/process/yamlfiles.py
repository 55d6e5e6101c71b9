"""Parsing YAML a user wrote (catalogs, stack files, expectations) in bounded time and space,
with one phrase for each way it can fail.

Plain ``yaml.safe_load`` recurses once per nesting level (``[[[[...`` ends in a
``RecursionError``), calls a second document (``---``) a syntax error although it is valid YAML,
places an error at the end of the stream on a line the file does not have, and expands aliases
(``*name``) that repeat one another into billions of values for whoever walks the result.
``load_yaml`` turns each of these into a ``YamlError`` whose ``problem`` completes "<file> ...".
"""

from __future__ import annotations

from typing import Any

import yaml

# Values a document may hold with every alias expanded: a catalog entry or a stack file holds
# a few hundred; ten nested aliases of ten items each would be 10**10.
MAX_VALUES = 100_000
SYNTAX_FIX = "fix the YAML syntax there"


class YamlError(Exception):
    """Why a text is not usable YAML: ``problem`` completes "<file> ...", ``fix`` says what
    to do."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


def load_yaml(
    text: str,
    *,
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
    one_document: str,
    passthrough: tuple[type[Exception], ...] = (),
) -> Any:
    """The one document in ``text``. ``one_document`` is the fix given when a second one
    follows; exceptions of a ``passthrough`` type (a loader's own errors) are not translated."""
    try:
        data = yaml.load(text, Loader=loader)
    except passthrough:
        raise
    except RecursionError:
        raise YamlError(
            "nests lists or mappings too deeply", "write it with far fewer levels"
        ) from None
    except yaml.composer.ComposerError as exc:
        if exc.problem != "but found another document" or exc.problem_mark is None:
            raise YamlError(yaml_problem(exc, text), SYNTAX_FIX) from None
        raise YamlError(
            f"holds a second YAML document (the '---' at line {exc.problem_mark.line + 1}), "
            "but the file is one document",
            one_document,
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(yaml_problem(exc, text), SYNTAX_FIX) from None
    problem = alias_problem(data)
    if problem is not None:
        raise YamlError(problem, "write the values out instead")
    return data


def yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what, by lines that exist: PyYAML puts an error at the end of the stream on
    the line after the last one, so that one is told as the end of the file, with the
    construct left open (``while parsing a flow sequence``) and where it started."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
    if mark is None:
        return f"is not valid YAML ({problem})"
    lines = len(text.splitlines())
    if mark.line + 1 > lines or mark.index >= len(text.rstrip()):
        where = f"at the end of the file (line {max(lines, 1)})"
    else:
        where = f"at line {mark.line + 1}, column {mark.column + 1}"
    opened = getattr(exc, "context_mark", None)
    context = getattr(exc, "context", None)
    if context and opened is not None and opened.line < lines:
        problem += f", {context} that starts at line {opened.line + 1}, column {opened.column + 1}"
    return f"is not valid YAML {where} ({problem})"


def alias_problem(data: Any) -> str | None:
    """What is wrong with the aliases (``*name``) of ``data``, if anything: an alias inside
    the value it names (an endless value), or more than ``MAX_VALUES`` values once every alias
    is expanded. Sizes are memoised per shared object, so the count itself stays cheap."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    pending: list[tuple[Any, bool]] = [(data, False)]
    while pending:
        node, children_done = pending.pop()
        children = _children(node)
        if not children_done:
            if id(node) in sizes:
                continue
            if id(node) in open_nodes:
                return "uses a YAML alias (*name) inside the value it names, an endless value"
            open_nodes.add(id(node))
            pending.append((node, True))
            pending.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(id(node))
        sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in children)
        if sizes[id(node)] > MAX_VALUES:
            return (
                f"expands to more than {MAX_VALUES:,} values through YAML aliases (*name) "
                "that repeat one another"
            )
    return None


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    return list(node) if isinstance(node, list) else []
