"""The one error a broken catalog raises: a single sentence a user can act on."""

from __future__ import annotations

from pathlib import Path

from pytest_mlxstack.errors import MlxStackError


class CatalogError(MlxStackError):
    """A catalog that cannot be used, told in one sentence: file, entry id, field, problem, fix.

    The parts stay available as attributes so callers (and tests) need not parse the text.
    """

    def __init__(
        self,
        problem: str,
        fix: str,
        *,
        file: Path | str | None = None,
        entry_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.entry_id = entry_id
        self.field = field
        where = [f"Catalog file {self.file}" if self.file else "Catalog"]
        if entry_id is not None:
            where.append(f"entry '{entry_id}'")
        if field:
            where.append(f"field '{field}'")
        super().__init__(problem, fix, where=", ".join(where))
