"""The pytest11 entry point: registers one thin wiring module per feature area.

Each module under ``pytest_mlxstack.wiring`` adds its own options (to the shared ``mlxstack``
group), fixtures and hooks, so that the areas stay independent of each other.
"""

from __future__ import annotations

pytest_plugins = [
    "pytest_mlxstack.wiring.core",
    "pytest_mlxstack.wiring.collection",
    "pytest_mlxstack.wiring.catalog",
    "pytest_mlxstack.wiring.stack",
    "pytest_mlxstack.wiring.matrix",
    "pytest_mlxstack.wiring.suites",
]
