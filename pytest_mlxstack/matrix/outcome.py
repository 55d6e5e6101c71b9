"""What a recorded cell means for the test that recorded it, decided without pytest.

The wiring maps the action onto ``pytest.fail`` / ``skip`` / ``xfail``; keeping the decision
here lets other harnesses apply the same rule and keeps the messages in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pytest_mlxstack.matrix.model import Expectation
from pytest_mlxstack.matrix.verdicts import ProbeResult, Verdict
from pytest_mlxstack.text.terminal import plain

Action = Literal["pass", "fail", "skip", "xfail"]


@dataclass(frozen=True)
class Outcome:
    action: Action
    message: str = ""


def decide(
    result: ProbeResult, expectation: Expectation | None = None, *, label: str = ""
) -> Outcome:
    """``fail`` fails with reason and attribution, ``skip``/``n/a`` skip, a known failure xfails.

    A failure the expectations file expects with another attribution is not the known one: it
    fails, saying which attribution was expected and which one happened.

    An unexpected pass passes: the matrix and the terminal summary flag it instead.
    The message quotes the probe's reason, which quotes model output: pytest prints it on the
    terminal, so escape sequences and control characters are removed (``plain``).
    """
    outcome = _decide(result, expectation, label=label)
    return Outcome(outcome.action, plain(outcome.message))


def _decide(result: ProbeResult, expectation: Expectation | None, *, label: str) -> Outcome:
    what = f"{result.capability} {label}".strip()
    if result.verdict is Verdict.PASS:
        return Outcome("pass")
    if result.verdict is Verdict.FAIL:
        blame = result.attribution.value if result.attribution else "unattributed"
        failure = f"{what} failed ({blame}): {result.reason or 'no reason given'}"
        if expectation is not None and expectation.status == "known_failure":
            link = f" ({expectation.link})" if expectation.link else ""
            return Outcome("xfail", f"known failure: {expectation.reason}{link}; {failure}")
        if (
            expectation is not None
            and expectation.verdict is Verdict.FAIL
            and expectation.attribution is not None
        ):
            return Outcome(
                "fail",
                f"{what} was expected to fail as {expectation.attribution.value} "
                f"({expectation.reason}) but failed as {blame}: "
                f"{result.reason or 'no reason given'}",
            )
        if expectation is not None:
            failure += f" [the expectations file says {expectation.verdict.value}]"
        return Outcome("fail", failure)
    kind = "not applicable" if result.verdict is Verdict.NOT_APPLICABLE else "skipped"
    return Outcome("skip", f"{what} {kind}: {result.reason or 'no reason given'}")
