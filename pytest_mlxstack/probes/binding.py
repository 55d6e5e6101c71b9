"""Ties a probe function to the capability it probes, where the function is defined.

The capability itself (title, requirements, routes, column order) is declared once in
``matrix.capabilities``; ``@probes("name")`` on the function is the only other line a new
capability needs. ``probes.registry`` reads what is bound here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pytest_mlxstack.matrix.capabilities import DECLARED
from pytest_mlxstack.matrix.verdicts import ProbeResult

ProbeFunction = Callable[..., ProbeResult]
F = TypeVar("F", bound=ProbeFunction)

BOUND: dict[str, ProbeFunction] = {}


def bind(capability: str, function: ProbeFunction) -> None:
    """Make ``function`` the probe of the declared ``capability`` (one probe per capability)."""
    if capability not in DECLARED:
        raise ValueError(
            f"no capability {capability!r} is declared; declare it in matrix.capabilities "
            f"(or use probes.register_capability) before binding a probe to it"
        )
    if capability in BOUND and BOUND[capability] is not function:
        raise ValueError(f"the capability {capability!r} already has a probe")
    BOUND[capability] = function


def probes(capability: str) -> Callable[[F], F]:
    """Decorator: the function probes ``capability``."""

    def decorate(function: F) -> F:
        bind(capability, function)
        return function

    return decorate
