"""Reading a catalog (a folder of YAML files, or one file) into validated entries.

Every way a catalog can be broken ends in one ``CatalogError`` sentence naming the file, the
entry, the field and the fix; pydantic's ``ValidationError`` never escapes.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pytest_mlxstack.catalog.errors import CatalogError
from pytest_mlxstack.catalog.schema import CatalogEntry
from pytest_mlxstack.catalog.vocabulary import QUANTIZATIONS
from pytest_mlxstack.process.textfiles import FileReadError, read_text_file
from pytest_mlxstack.process.yamlfiles import YamlError, load_yaml

YAML_SUFFIXES = (".yaml", ".yml")
# A catalog file holds one entry or a list of a few hundred: a few hundred KB at most. Bigger is
# a wrong file, and pure-Python YAML would take long to say so.
MAX_FILE_BYTES = 4 * 2**20
ONE_ENTRY_PER_FILE = (
    "a catalog file holds one entry or a list of entries: put each entry in a file of its "
    "own, or write them as one list (each starting with '- id: ...') in a single document"
)
_PACKAGE_DIR = Path(__file__).resolve().parent.parent

# What to write for a missing field, used in the fix of a "missing" error.
FIELD_HINTS: dict[str, str] = {
    "id": "a slug such as qwen3-8b",
    "name": "a display name such as Qwen3 8B",
    "family": "the model family such as Qwen3",
    "params_b": "the parameter count in billions, e.g. 8.2",
    "architecture": "the config.json model_type, e.g. qwen3",
    "min_mlx_lm_version": 'the oldest mlx-lm that loads it, quoted, e.g. "0.25.2"',
    "sources": "a mapping such as int4: {hf_repo: org/name, disk_size_gb: 4.6}",
    "prompt_tps": "prompt tokens per second, e.g. 350",
    "gen_tps": "generated tokens per second, e.g. 45",
    "memory_gb": "peak memory in GB, e.g. 5.1",
    "confidence": "high, medium or low",
}

_TYPE_WORDS = {
    "float": "a number",
    "int": "a whole number",
    "bool": "true or false",
    "string": "a text",
    "dict": "a mapping (key: value lines)",
    "list": "a list",
    "model": "a mapping (key: value lines)",
    "path": "a folder path",
}


class _DuplicateKeyError(yaml.YAMLError):
    """A mapping that names the same key twice (plain YAML keeps the last one silently)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys in a mapping.

    With two ``int4:`` under ``sources`` the plain loader keeps the second and drops the first
    without a word, so a catalog could ship a source nobody reviewed. Merge keys (``<<``) may
    still be overridden, as YAML intends.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first != key_node.start_mark.line + 1:
                    raise _DuplicateKeyError(key, key_node.start_mark.line + 1, first)
        return super().construct_mapping(node, deep)


def default_catalog_path() -> Path:
    """The shipped catalog: ``catalog_data`` in a wheel, else the checkout's ``catalog/``."""
    for candidate in (_PACKAGE_DIR / "catalog_data", _PACKAGE_DIR.parent / "catalog"):
        if candidate.is_dir():
            return candidate
    raise CatalogError(
        "the shipped catalog is not installed",
        "reinstall pytest-mlxstack or pass a catalog path explicitly",
        file=_PACKAGE_DIR / "catalog_data",
        kind="folder",
    )


@dataclass(frozen=True)
class Catalog:
    """The validated entries of a catalog, in file order, with unique ids."""

    path: Path
    entries: tuple[CatalogEntry, ...]
    _by_id: dict[str, CatalogEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {e.id: e for e in self.entries})

    def get(self, entry_id: str) -> CatalogEntry:
        """The entry with this id; ``KeyError`` naming the known ids otherwise."""
        try:
            return self._by_id[entry_id]
        except KeyError:
            raise KeyError(
                f"no catalog entry '{entry_id}' in {self.path} (known: {', '.join(self._by_id)})"
            ) from None

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Load and validate a catalog folder (every ``*.yaml``/``*.yml`` in it) or one YAML file."""
    root = default_catalog_path() if path is None else Path(path).expanduser()
    is_folder = _is_folder(root)
    kind = "folder" if is_folder else "file"
    if is_folder:
        try:
            files = sorted(
                p
                for p in root.iterdir()
                if p.suffix in YAML_SUFFIXES and not p.name.startswith(".")
            )
        except OSError as exc:
            raise CatalogError(
                f"cannot be listed ({exc.strerror or type(exc).__name__})",
                "make the folder readable",
                file=root,
                kind=kind,
            ) from None
    else:
        files = [root]
    entries: list[CatalogEntry] = []
    seen: dict[str, Path] = {}
    for file in files:
        for entry in _load_file(file):
            if entry.id in seen:
                raise CatalogError(
                    f"is a duplicate of the entry in {seen[entry.id]}",
                    "give each entry its own id or remove one of them",
                    file=file,
                    entry_id=entry.id,
                    field="id",
                )
            seen[entry.id] = file
            entries.append(entry)
    if not entries:
        raise CatalogError(
            "the catalog is empty (no YAML file with an entry)"
            if is_folder
            else "the file holds no entry",
            "add one YAML file per model with at least id, name, family, params_b, "
            "architecture, min_mlx_lm_version and sources",
            file=root,
            kind=kind,
        )
    return Catalog(root, tuple(entries))


def _is_folder(root: Path) -> bool:
    """Whether the catalog path is a folder (else a file); a path that leads nowhere is a
    ``CatalogError`` saying why (missing, a dangling link, a link loop)."""
    try:
        return stat.S_ISDIR(os.stat(root).st_mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            problem = "is a symbolic link loop (it leads back to itself)"
        elif exc.errno == errno.ENOENT and root.is_symlink():
            problem = f"is a symbolic link to {os.readlink(root)}, which does not exist"
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            problem = "the path does not exist"
        else:
            problem = f"cannot be used ({exc.strerror or type(exc).__name__})"
        raise CatalogError(
            problem, "pass an existing catalog folder or YAML file", file=root, kind="path"
        ) from None


def _read_fix(problem: str) -> str:
    if "not a regular file" in problem or "directory" in problem:
        return "remove it from the catalog folder, or pass a YAML file"
    if "UTF-8" in problem:
        return "save it as UTF-8 text"
    if "larger than" in problem:
        return "pass the catalog's YAML files, one entry (or a list of entries) in each"
    return "make it a readable UTF-8 YAML file"


def _load_file(file: Path) -> list[CatalogEntry]:
    """The entries of one YAML file: a mapping (one entry) or a list of mappings."""
    try:
        text = read_text_file(file, max_bytes=MAX_FILE_BYTES)
    except FileReadError as exc:
        raise CatalogError(exc.problem, _read_fix(exc.problem), file=file) from None
    try:
        data = load_yaml(
            text,
            loader=_UniqueKeyLoader,  # a SafeLoader: no arbitrary objects
            one_document=ONE_ENTRY_PER_FILE,
            passthrough=(_DuplicateKeyError,),
        )
    except YamlError as exc:
        raise CatalogError(exc.problem, exc.fix, file=file) from None
    except _DuplicateKeyError as exc:
        raise CatalogError(
            f"the key {_describe(exc.key)} appears twice in one mapping, at lines "
            f"{exc.first_line} and {exc.line} (YAML would silently keep only the last)",
            f"keep one {_describe(exc.key)} there: merge the two or remove one",
            file=file,
        ) from None
    if data is None:
        return []
    items = data if isinstance(data, list) else [data]
    entries = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise CatalogError(
                f"item {index + 1} is {_describe(raw)}, not a mapping",
                "write each entry as key: value lines (one mapping per model)",
                file=file,
            )
        entries.append(_validate(raw, file))
    return entries


def _validate(raw: dict[str, Any], file: Path) -> CatalogEntry:
    raw_id = raw.get("id")
    entry_id = raw_id if isinstance(raw_id, str) else None
    try:
        entry = CatalogEntry.model_validate(raw, context={"base_dir": file.parent.resolve()})
    except ValidationError as exc:
        # An unknown key first: a misspelt field is the cause of the "missing" error it brings.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        problem, fix, where = _explain(errors[0], raw)
        more = len(errors) - 1
        if more:
            fix += f" (and {more} more problem{'s' if more > 1 else ''} in this entry)"
        raise CatalogError(
            problem, fix, file=file, entry_id=entry_id or "<no id>", field=where
        ) from None
    entry.bind_file(file)
    return entry


def _explain(error: ErrorDetails, raw: dict[str, Any]) -> tuple[str, str, str]:
    """(problem, fix, dotted field) for one pydantic error."""
    loc = [str(part) for part in error["loc"]]
    ctx = error.get("ctx") or {}
    kind = error["type"]
    value = error.get("input")
    if kind == "catalog_rule":
        if ctx.get("field"):
            loc.append(str(ctx["field"]))
        return str(ctx["problem"]), str(ctx["fix"]), ".".join(loc)
    if loc and loc[-1] == "[key]":
        return _key_problem(loc[:-1], value)
    where = ".".join(loc)
    name = loc[-1] if loc else ""
    if kind == "missing":
        hint = FIELD_HINTS.get(name, "a value")
        return "is missing", f"add {name}: {hint}", where
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1])
        close = difflib.get_close_matches(name, known, n=1)
        fix = f"rename it to '{close[0]}'" if close else "remove it"
        return "is not a known field", f"{fix} (known fields: {', '.join(known)})", where
    if kind in {"greater_than", "greater_than_equal", "less_than_equal", "less_than"}:
        bound = {
            "greater_than": f"greater than {_number(ctx.get('gt'))}",
            "greater_than_equal": f"at least {_number(ctx.get('ge'))}",
            "less_than_equal": f"at most {_number(ctx.get('le'))}",
            "less_than": f"less than {_number(ctx.get('lt'))}",
        }[kind]
        extra = " (scores run from 0 to 100)" if loc and loc[0] == "quality" else ""
        return f"is {value!r} but must be {bound}{extra}", f"write a number {bound}", where
    if kind == "finite_number":
        return f"is {value!r}, not a finite number", "write a finite number", where
    if kind == "string_too_short":
        return "is empty", "write a non-empty text", where
    if kind == "literal_error":
        return f"is {value!r}", f"use one of {ctx.get('expected')}", where
    for suffix, word in _TYPE_WORDS.items():
        if kind.startswith(suffix) or kind == f"{suffix}_type" or kind.endswith(f"{suffix}_type"):
            example = FIELD_HINTS.get(name)
            fix = f"write {example}" if example else f"write {word}"
            return f"should be {word} but is {_describe(value)}", fix, where
    return str(error["msg"]), "correct the value", where


def _key_problem(loc: list[str], key: Any) -> tuple[str, str, str]:
    """(problem, fix, field) for a mapping key that is not a name: YAML reads ``4:`` as the
    number 4 and ``yes:`` as true, where a quantization or a profile name was meant."""
    if isinstance(key, bool):
        shown = f"reads as {str(key).lower()} (YAML turns yes, no, on and off into true/false)"
    else:
        shown = "is empty" if key is None else f"{key!r} is a number"
    mapping = loc[0] if len(loc) == 2 else ""
    if mapping == "sources":
        guess = f"int{key}"
        example = guess if guess in QUANTIZATIONS else "int4"
        return (
            f"the quantization key {shown}, but quantizations are names",
            f"write one of {', '.join(sorted(QUANTIZATIONS))} (e.g. {example}:)",
            ".".join(loc),
        )
    if mapping == "benchmarks":
        return (
            f"the hardware profile key {shown}, but profiles are names",
            "write a profile name such as m4-pro-48gb",
            ".".join(loc),
        )
    return f"the key {shown}, but keys there are names", "write a name", ".".join(loc)


def _known_fields(loc: list[str]) -> list[str]:
    """Field names of the model found at ``loc`` (for spelling suggestions)."""
    model: type[BaseModel] = CatalogEntry
    for part in loc:
        info = model.model_fields.get(part)
        if info is None:
            # a dict key such as a quantization or a hardware profile: descend into the value type
            continue
        annotation = info.annotation
        nested = _model_in(annotation)
        if nested is not None:
            model = nested
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
