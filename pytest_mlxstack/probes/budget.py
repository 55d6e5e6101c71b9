"""Completion-token budgets per probe, sized for real reasoning models.

A reasoning model thinking through "23 * 47" can spend thousands of tokens before it answers;
a cap sized for the tiny fixture model would cut it (``finish_reason: length``) and the cell
would read as if the model lacked the capability. Each probe asks for the budget of its kind
here, scaled by ``--mlx-token-budget`` (a multiplier, set once per process by the pytest
wiring). An answer cut by its budget is reported as such (``exhausted``), never as the model's
fault. The fixture model stops long before any budget, so big budgets cost nothing there.
"""

from __future__ import annotations

from pytest_mlxstack.matrix.verdicts import Attribution

# Completion tokens per kind of probe at multiplier 1.
BASE_BUDGETS = {"text": 1024, "tools": 1024, "thinking": 8192}
# Capabilities whose probes think (the others answer plainly or call a tool).
_THINKING = ("thinking", "responses_api", "messages_api")
_TOOLS = (
    "tool_calling",
    "tool_calling_streaming",
    "tool_result",
    "tool_choice_none",
    "tool_choice_required",
    "tool_choice_named",
    "tool_selection",
    "no_call",
    "parallel_tool_calls",
)
BUDGET_OPTION = "--mlx-token-budget"

_scale = 1.0


def set_scale(multiplier: float) -> None:
    """Scale every budget by ``multiplier`` (from ``--mlx-token-budget``; > 0)."""
    global _scale
    if not multiplier > 0:
        raise ValueError(f"a token-budget multiplier must be above 0, not {multiplier!r}")
    _scale = float(multiplier)


def scale() -> float:
    return _scale


def kind_of(capability: str) -> str:
    if capability in _THINKING:
        return "thinking"
    if capability in _TOOLS:
        return "tools"
    return "text"


def tokens(kind: str) -> int:
    """The completion-token budget of a probe of ``kind`` (text, tools, thinking)."""
    return max(1, round(BASE_BUDGETS[kind] * _scale))


def for_capability(capability: str) -> int:
    return tokens(kind_of(capability))


def exhausted(max_tokens: int | None, *, while_: str = "answering") -> tuple[Attribution, str]:
    """The attribution and reason of an answer cut by its budget: the harness asked for too
    few tokens (``client``), which says nothing about the model's capability."""
    return Attribution.CLIENT, (
        f"budget exhausted: {max_tokens or 'its'} tokens ran out while {while_}, so the answer "
        f"was cut "
        f"before it could be judged; raise it with {BUDGET_OPTION} (a multiplier, now "
        f"{_scale:g})"
    )
