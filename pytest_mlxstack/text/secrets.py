"""Secrets that cannot be printed by accident: not in logs, not in pytest's traceback locals.

``pytest -l`` (and ``--tb=long``, ``--full-trace``, junit XML) shows the ``repr`` of every
local of every frame in a failure's traceback. A child's environment held as a plain ``dict``,
or a key held as a plain ``str``, would print there. ``Secret`` and ``RedactedEnv`` behave like
the value they hold where the value is needed (``reveal()``, a mapping for ``subprocess``) and
print as ``[REDACTED]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pytest_mlxstack.text.redact import REDACTED

# Values of these variables are redacted whatever their length; other names that look secret
# (``SECRET_NAME``) only when the value is long enough to be one (not "1" or "true").
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "LITELLM_MASTER_KEY", "OPENAI_API_KEY")
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MIN_GUESSED_SECRET_LEN = 6


def is_secret_variable(name: str, value: str) -> bool:
    """Whether the environment variable ``name=value`` holds something never to be shown."""
    if not value:
        return False
    if name in SECRET_ENV_VARS:
        return True
    return bool(SECRET_NAME.search(name)) and len(value) >= MIN_GUESSED_SECRET_LEN


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values in ``env`` that must never be shown: those of ``SECRET_ENV_VARS`` and of
    other variables named like a token, key, secret or password."""
    return [value for name, value in env.items() if is_secret_variable(name, value)]


class Secret:
    """A secret string whose ``repr``/``str`` is a placeholder; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<hidden>)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


class RedactedEnv(dict[str, str]):
    """A process environment (a real ``dict``, as ``subprocess`` wants) whose ``repr`` hides
    the values of secret-looking variables, so a traceback local never shows them."""

    def __repr__(self) -> str:
        shown = {
            name: REDACTED if is_secret_variable(name, value) else value
            for name, value in self.items()
        }
        return f"{type(self).__name__}({shown!r})"

    __str__ = __repr__
