"""The package's one error family: every error a user can see derives from ``MlxStackError``.

An error carries its parts as fields (``where``, ``problem``, ``fix``, ``detail``) so that no
caller parses its text; ``str()`` is the one sentence a user reads: ``<where>: <problem>;
<fix>.``. ``detail`` (a log tail, say) is never part of that sentence: callers show it where it
fits (a report section, a second line), or leave it out.
"""

from __future__ import annotations


class MlxStackError(Exception):
    """Base of every pytest-mlxstack error: where, the problem, how to fix it, optional detail."""

    def __init__(self, problem: str, fix: str = "", *, where: str = "", detail: str = "") -> None:
        self.where = where
        self.problem = problem
        self.fix = fix
        self.detail = detail
        super().__init__(self.sentence)

    @property
    def sentence(self) -> str:
        """The one-sentence message: ``where: problem; fix.`` with the parts that are known."""
        return sentence(self.problem, self.fix, where=self.where)

    def __str__(self) -> str:
        return self.sentence


def sentence(problem: str, fix: str = "", *, where: str = "") -> str:
    """The one way a problem, its place and its fix are joined into a sentence."""
    text = problem.rstrip()
    fix = fix.strip().rstrip(".")
    if fix:
        text = f"{text.rstrip('.;')}; {fix}."
    return f"{where}: {text}" if where else text
