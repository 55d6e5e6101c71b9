"""Compare two matrices cell by cell: what regressed, what got fixed, what is new.

Cells are matched on (model, quant, machine profile, capability, route). A regression is a cell
that passed in BASE and fails in NEW, or that passed in BASE and is missing from NEW (a model
that no longer starts, a test that no longer records): a pass must not vanish silently. A
regression makes ``mlxstack matrix diff`` exit non-zero; other changes are reported. Two
matrices that share no cell at all (another machine profile, other models) cannot be compared:
``no_shared_cells`` says so in one sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pytest_mlxstack.matrix.capabilities import capability_rank
from pytest_mlxstack.matrix.model import Cell, Matrix, Row
from pytest_mlxstack.matrix.verdicts import Verdict
from pytest_mlxstack.text import markdown
from pytest_mlxstack.text.terminal import one_line

ChangeKind = Literal["regression", "fix", "new", "removed", "changed"]
CHANGE_KINDS: tuple[ChangeKind, ...] = ("regression", "fix", "changed", "new", "removed")
CellKey = tuple[str, str, str, str, str, str]
MISSING = "missing"  # what a regression shows as "after" when the cell is gone
MISSING_REASON = "missing: the new matrix has no such cell (not run, or not recorded)"


@dataclass(frozen=True)
class CellChange:
    model: str
    quant: str
    profile: str
    capability: str
    route: str
    kind: ChangeKind
    before: str | None
    after: str | None
    attribution: str | None = None
    reason: str = ""
    server: str = "vllm-mlx"

    @property
    def key(self) -> CellKey:
        return (self.model, self.quant, self.server, self.profile, self.capability, self.route)


@dataclass
class MatrixDiff:
    changes: list[CellChange] = field(default_factory=list)
    unchanged: int = 0
    shared: int = 0  # cells present in both matrices

    def of_kind(self, kind: ChangeKind) -> list[CellChange]:
        return [change for change in self.changes if change.kind == kind]

    @property
    def regressions(self) -> list[CellChange]:
        return self.of_kind("regression")

    @property
    def fixes(self) -> list[CellChange]:
        return self.of_kind("fix")

    @property
    def has_regressions(self) -> bool:
        return bool(self.regressions)

    def by_key(self) -> dict[CellKey, CellChange]:
        return {change.key: change for change in self.changes}

    def counts(self) -> dict[str, int]:
        return {kind: len(self.of_kind(kind)) for kind in CHANGE_KINDS}

    def headline(self) -> str:
        counts = self.counts()
        parts = [f"{counts['regression']} regression{'s' * (counts['regression'] != 1)}"]
        parts += [
            f"{counts['fix']} fix{'es' * (counts['fix'] != 1)}",
            f"{counts['changed']} changed",
            f"{counts['new']} new",
            f"{counts['removed']} removed",
            f"{self.unchanged} unchanged",
        ]
        return ", ".join(parts)

    def regression_lines(self, limit: int = 10) -> list[str]:
        """One ``REGRESSION ...`` line per regressed cell (at most ``limit``, then a count), as
        the terminal summaries print them under the headline."""
        lines = [
            f"  REGRESSION {_cell_label(change)}: {change.before} -> {_after(change)}{_why(change)}"
            for change in self.regressions[:limit]
        ]
        if len(self.regressions) > limit:
            lines.append(f"  ... and {len(self.regressions) - limit} more regressions")
        return lines

    def to_text(self) -> str:
        """The plain-text report; text from the matrices is stripped of escape sequences and
        control characters (model output could drive the reader's terminal)."""
        lines = [self.headline()]
        for change in self.changes:
            lines.append(
                f"  {change.kind:<10} {_cell_label(change)} on {one_line(change.profile)}: "
                f"{one_line(change.before or '-')} -> {_after(change)}{_why(change)}"
            )
        return "\n".join(lines) + "\n"

    def to_markdown(self, *, base: str = "base", new: str = "new") -> str:
        """A job-summary section: headline, then one table per kind of change. Every text from
        the matrices is escaped (``text.markdown``): model output stays text, never a link,
        an image or markup."""
        marker = ":x:" if self.has_regressions else ":white_check_mark:"
        lines = [
            "## Compatibility matrix diff",
            "",
            f"{marker} **{self.headline()}** (`{markdown.code(base)}` → `{markdown.code(new)}`)",
        ]
        titles = {
            "regression": "Regressions (pass → fail or missing)",
            "fix": "Fixes (fail → pass)",
            "changed": "Other changes",
            "new": "New cells",
            "removed": "Removed cells",
        }
        for kind in CHANGE_KINDS:
            changes = self.of_kind(kind)
            if not changes:
                continue
            lines += [
                "",
                f"### {titles[kind]}",
                "",
                "| Model | Quant | Profile | Capability | Route | Before | After | Why |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for change in changes:
                why = (
                    f"{change.attribution}: {change.reason}"
                    if change.attribution
                    else change.reason
                )
                cells = (
                    change.model,
                    change.quant,
                    change.profile,
                    change.capability,
                    change.route,
                    change.before or "-",
                    _after(change),
                    why,
                )
                lines.append("| " + " | ".join(markdown.inline(text) for text in cells) + " |")
        return "\n".join(lines) + "\n"


def diff_matrices(base: Matrix, new: Matrix) -> MatrixDiff:
    before = dict(_cells(base))
    after = dict(_cells(new))
    result = MatrixDiff()
    for key in sorted(before.keys() | after.keys(), key=_order):
        old, now = before.get(key), after.get(key)
        if old is not None and now is not None:
            result.shared += 1
        kind = _classify(old, now)
        if kind is None:
            result.unchanged += 1
            continue
        if now is None and kind == "regression":
            attribution, reason = None, MISSING_REASON
        else:
            shown = now or old
            assert shown is not None
            attribution = shown.attribution.value if shown.attribution else None
            reason = shown.reason
        result.changes.append(
            CellChange(
                model=key[0],
                quant=key[1],
                server=key[2],
                profile=key[3],
                capability=key[4],
                route=key[5],
                kind=kind,
                before=old.verdict.value if old else None,
                after=now.verdict.value if now else None,
                attribution=attribution,
                reason=reason,
            )
        )
    return result


def no_shared_cells(base: Matrix, new: Matrix, *, base_name: str, new_name: str) -> str | None:
    """One sentence when ``base`` and ``new`` have no (model, quant, server, profile, capability,
    route)
    cell in common, so that comparing them would say nothing; ``None`` when they share one."""
    if diff_matrices(base, new).shared:
        return None
    return (
        f"{base_name} (profiles: {_profiles(base)}) and {new_name} (profiles: "
        f"{_profiles(new)}) share no (model, quant, profile, capability, route) cell, so there "
        f"is nothing to compare; run the new matrix with the base's profile "
        f"(--mlx-machine-profile) or compare matrices of the same models"
    )


def _profiles(matrix: Matrix) -> str:
    names = sorted({row.profile for row in matrix.rows} | {run.profile for run in matrix.runs})
    return ", ".join(names) or "none"


def _classify(old: Cell | None, now: Cell | None) -> ChangeKind | None:
    if old is None:
        return "new"
    if now is None:
        return "regression" if old.verdict is Verdict.PASS else "removed"
    if old.verdict is now.verdict:
        return None
    if old.verdict is Verdict.PASS and now.verdict is Verdict.FAIL:
        return "regression"
    if old.verdict is Verdict.FAIL and now.verdict is Verdict.PASS:
        return "fix"
    return "changed"


def _cells(matrix: Matrix) -> Iterable[tuple[CellKey, Cell]]:
    for row in matrix.rows:
        for cell in row.cells:
            yield _key(row, cell), cell


def _key(row: Row, cell: Cell) -> CellKey:
    return (row.model, row.quant, row.server, row.profile, cell.capability, cell.route.value)


def _order(key: CellKey) -> tuple[object, ...]:
    model, quant, server, profile, capability, route = key
    return (model, quant, server, profile, *capability_rank(capability), route)


def _cell_label(change: CellChange) -> str:
    """``model [quant] capability (route)`` for a terminal: names come from the files."""
    on = "" if change.server == "vllm-mlx" else f" on {one_line(change.server)}"
    return (
        f"{one_line(change.model)} [{one_line(change.quant)}]{on} {one_line(change.capability)} "
        f"({one_line(change.route)})"
    )


def _after(change: CellChange) -> str:
    if change.after is None:
        return MISSING if change.kind == "regression" else "-"
    return one_line(change.after)


def _why(change: CellChange) -> str:
    if not change.reason and not change.attribution:
        return ""
    blame = f"{one_line(change.attribution)}: " if change.attribution else ""
    return f" ({blame}{one_line(change.reason, 160)})"
