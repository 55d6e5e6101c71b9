"""Several servers somebody else runs, from a small YAML file (``--mlx-endpoints FILE``).

::

    endpoints:
      - url: http://mac-studio.local:8080/v1
        model: mlx-community/Qwen3-8B-4bit   # optional: the only model /v1/models lists
        label: studio-mlx-lm                 # optional: detected from its answers
        api_key_env: STUDIO_KEY              # optional: the variable holding its key
        catalog_model: qwen3-8b:int4         # optional: as --mlx-models (default: model name)
      - url: http://127.0.0.1:8081

A key is never written in the file: ``api_key_env`` names the environment variable that holds
it, and ``api_key:`` is refused, so the file can be committed and shared. Every mistake is one
sentence naming the file, the entry (by number and URL) and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_mlxstack.process.textfiles import FileReadError, read_text_file
from pytest_mlxstack.process.yamlfiles import YamlError, load_yaml
from pytest_mlxstack.stack.endpoint import Endpoint, base_url_of, open_endpoint
from pytest_mlxstack.stack.errors import StackError
from pytest_mlxstack.text.redact import register_secret
from pytest_mlxstack.text.terminal import one_line

MAX_ENDPOINTS_FILE_BYTES = 2**20
FIELDS = ("url", "model", "label", "api_key_env", "catalog_model")
EXAMPLE = "endpoints: [{url: 'http://127.0.0.1:8080/v1'}]"


class EndpointFileError(StackError):
    """A ``--mlx-endpoints`` file that cannot be used: one sentence, file, entry and field."""


@dataclass(frozen=True)
class EndpointEntry:
    """One entry of the file, checked but not yet asked anything."""

    url: str
    where: str  # "FILE: endpoint 2 (URL)", for messages
    model: str | None = None
    label: str | None = None
    api_key_env: str | None = None
    catalog_model: str | None = None


@dataclass(frozen=True)
class NamedEndpoint:
    """An opened endpoint, its row name (unique in the run) and its catalog entry, if named."""

    endpoint: Endpoint
    catalog_model: str | None = None


def load_endpoints_file(path: Path) -> list[EndpointEntry]:
    """The entries of ``path``; ``EndpointFileError`` naming file, entry and field if bad."""
    try:
        text = read_text_file(path, max_bytes=MAX_ENDPOINTS_FILE_BYTES)
    except FileReadError as exc:
        raise EndpointFileError(
            f"{path} {exc.problem}", "pass the path of a YAML endpoints file"
        ) from None
    try:
        data = load_yaml(text, one_document="an endpoints file is one mapping with endpoints:")
    except YamlError as exc:
        raise EndpointFileError(f"{path} {exc.problem}", exc.fix) from None
    items = data.get("endpoints") if isinstance(data, Mapping) else None
    if not isinstance(items, list) or not items:
        raise EndpointFileError(
            f"{path}: 'endpoints' is not a non-empty list", f"write e.g. {EXAMPLE}"
        )
    return [_entry(path, number, item) for number, item in enumerate(items, start=1)]


def _entry(path: Path, number: int, item: Any) -> EndpointEntry:
    url = item.get("url") if isinstance(item, Mapping) else None
    where = f"{path}: endpoint {number}" + (f" ({one_line(str(url))})" if url else "")
    if not isinstance(item, Mapping):
        raise EndpointFileError(f"{where} is not a mapping", f"write e.g. {EXAMPLE}")
    if "api_key" in item:
        raise EndpointFileError(
            f"{where}, field 'api_key': a key is never written in the file",
            "put it in an environment variable and name that with api_key_env",
        )
    unknown = sorted(str(key) for key in item if key not in FIELDS)
    if unknown:
        raise EndpointFileError(
            f"{where}, field {one_line(unknown[0])!r} is not an endpoint field",
            f"use {', '.join(FIELDS)}",
        )
    values: dict[str, str | None] = {}
    for name in FIELDS:
        value = item.get(name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise EndpointFileError(
                f"{where}, field {name!r}: {one_line(repr(value))} is not a non-empty string",
                f"write it as text, e.g. {name}: ..." if name != "url" else f"e.g. {EXAMPLE}",
            )
        values[name] = value.strip() if isinstance(value, str) else None
    if values["url"] is None:
        raise EndpointFileError(f"{where}, field 'url' is missing", f"write e.g. {EXAMPLE}")
    try:
        base_url_of(values["url"], where=f"{where}, field 'url'")
    except StackError as exc:  # not http(s): the same sentence, as this file's error
        raise EndpointFileError(str(exc)) from None
    return EndpointEntry(
        url=values["url"],
        where=where,
        model=values["model"],
        label=values["label"],
        api_key_env=values["api_key_env"],
        catalog_model=values["catalog_model"],
    )


def open_endpoints(
    entries: list[EndpointEntry], environ: Mapping[str, str] | None = None
) -> list[NamedEndpoint]:
    """Ask each server for its models once; rows must be told apart, so two entries that come
    out with the same server name (two mlx_lm.servers, say) are named ``NAME@HOST:PORT``."""
    environ = os.environ if environ is None else environ
    opened = []
    for entry in entries:
        key = None
        if entry.api_key_env is not None:
            key = environ.get(entry.api_key_env)
            if not key:
                raise EndpointFileError(
                    f"{entry.where}, field 'api_key_env': the environment variable "
                    f"{entry.api_key_env} is not set",
                    "export it with the server's key, or leave api_key_env out",
                )
            register_secret(key)
        endpoint = open_endpoint(
            entry.url, model=entry.model, api_key=key, label=entry.label, where=entry.where
        )
        opened.append((entry, endpoint))
    names = [endpoint.server for _, endpoint in opened]
    named: list[NamedEndpoint] = []
    for entry, endpoint in opened:
        if names.count(endpoint.server) > 1:
            if entry.label is not None:
                raise EndpointFileError(
                    f"{entry.where}, field 'label': {endpoint.server!r} names another entry too",
                    "give each endpoint a label of its own",
                )
            address = base_url_of(endpoint.base_url).split("://", 1)[1].split("/", 1)[0]
            endpoint = Endpoint(
                endpoint.base_url, endpoint.model, f"{endpoint.server}@{address}", endpoint.api_key
            )
        if any(other.endpoint.server == endpoint.server for other in named):
            raise EndpointFileError(
                f"{entry.where} is the same server as an earlier entry ({endpoint.server})",
                "list each server once",
            )
        named.append(NamedEndpoint(endpoint, entry.catalog_model))
    return named
