"""The model catalog: schema, loading and the shipped default catalog.

``load_catalog(path)`` returns a ``Catalog`` of validated ``CatalogEntry`` objects or raises a
``CatalogError`` whose message is one sentence naming the file, the entry, the field and the fix.
"""

from __future__ import annotations

from pytest_mlxstack.catalog.errors import CatalogError
from pytest_mlxstack.catalog.loading import Catalog, default_catalog_path, load_catalog
from pytest_mlxstack.catalog.parsers import ParserRegistry, parser_registry
from pytest_mlxstack.catalog.schema import (
    Benchmark,
    Capabilities,
    CatalogEntry,
    Evidence,
    Source,
    catalog_entry_json_schema,
)
from pytest_mlxstack.catalog.vocabulary import (
    BYTES_PER_PARAM,
    KNOWN_PROFILES,
    QUANTIZATIONS,
    HardwareProfile,
)

__all__ = [
    "BYTES_PER_PARAM",
    "KNOWN_PROFILES",
    "QUANTIZATIONS",
    "Benchmark",
    "Capabilities",
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "Evidence",
    "HardwareProfile",
    "ParserRegistry",
    "Source",
    "catalog_entry_json_schema",
    "default_catalog_path",
    "load_catalog",
    "parser_registry",
]
