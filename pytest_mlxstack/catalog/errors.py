"""The one error a broken catalog raises: a single sentence a user can act on."""

from __future__ import annotations

from pathlib import Path

from pytest_mlxstack.errors import MlxStackError
from pytest_mlxstack.text.terminal import one_line, plain


class CatalogError(MlxStackError):
    """A catalog that cannot be used, told in one sentence: file, entry id, field, problem, fix.

    The parts stay available as attributes so callers (and tests) need not parse the text.
    ``kind`` names what ``file`` is: ``file``, ``folder`` (the catalog folder itself) or
    ``path`` (when it is neither). Ids and field names come from the YAML as written, so
    control characters are removed from them before they reach a terminal.
    """

    def __init__(
        self,
        problem: str,
        fix: str,
        *,
        file: Path | str | None = None,
        entry_id: str | None = None,
        field: str | None = None,
        kind: str = "file",
    ) -> None:
        self.file = None if file is None else str(file)
        self.entry_id = None if entry_id is None else one_line(entry_id)
        self.field = None if field is None else one_line(field)
        self.kind = kind
        where = [f"Catalog {kind} {self.file}" if self.file else "Catalog"]
        if self.entry_id is not None:
            where.append(f"entry '{self.entry_id}'")
        if self.field:
            where.append(f"field '{self.field}'")
        super().__init__(plain(problem), plain(fix), where=", ".join(where))
