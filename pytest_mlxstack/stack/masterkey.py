"""The stack's LiteLLM master key: random per stack, and hard to print by accident.

The key reaches LiteLLM only through its environment (``LITELLM_MASTER_KEY``). ``repr``/``str``
never show it; code that needs the value calls ``reveal()``, which is easy to grep for.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from pytest_mlxstack.process.atomic import write_text_atomic
from pytest_mlxstack.text.secrets import Secret

KEY_PREFIX = "sk-"


class MasterKey(Secret):
    """A secret string whose text form is a placeholder."""

    __slots__ = ()

    def __init__(self, value: str) -> None:
        if not value.startswith(KEY_PREFIX) or len(value) < 16:
            raise ValueError("a LiteLLM master key starts with 'sk-' and has 16+ characters")
        super().__init__(value)

    @classmethod
    def generate(cls) -> MasterKey:
        """``sk-`` and 32 random bytes, URL-safe: LiteLLM refuses an empty key or ``sk-1234``."""
        return cls(KEY_PREFIX + secrets.token_urlsafe(32))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash((MasterKey, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a MasterKey is not pickled; pass it explicitly where it is needed")


def write_key_file(path: Path, key: MasterKey) -> Path:
    """Write the key alone to ``path``, readable by the owner only (0600 from creation on).

    Used for detached CLI stacks, so that a later shell can read the key without it ever being
    printed. The file is created with its final mode and renamed into place, so no other user can
    read it even for a moment, and a crash never leaves half a key.
    """
    write_text_atomic(path, key.reveal() + "\n", mode=0o600)
    return path
