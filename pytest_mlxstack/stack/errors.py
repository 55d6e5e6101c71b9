"""Errors a stack raises for the user: each one sentence saying what, where and how to fix."""

from __future__ import annotations

from pytest_mlxstack.errors import MlxStackError


class StackError(MlxStackError, RuntimeError):
    """A stack that cannot be brought up (unknown model, port in use, a service that died)."""
