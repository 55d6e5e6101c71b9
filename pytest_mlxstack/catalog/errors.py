"""The one error a broken catalog raises: a single sentence a user can act on."""

from __future__ import annotations

from pathlib import Path


class CatalogError(Exception):
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
        self.problem = problem
        self.fix = fix
        self.file = None if file is None else str(file)
        self.entry_id = entry_id
        self.field = field
        super().__init__(self.sentence)

    @property
    def sentence(self) -> str:
        """``Catalog file F, entry 'E', field 'X': problem; fix.`` with the parts that are known."""
        where = [f"Catalog file {self.file}" if self.file else "Catalog"]
        if self.entry_id is not None:
            where.append(f"entry '{self.entry_id}'")
        if self.field:
            where.append(f"field '{self.field}'")
        fix = self.fix.rstrip(".")
        return f"{', '.join(where)}: {self.problem}; {fix}."
