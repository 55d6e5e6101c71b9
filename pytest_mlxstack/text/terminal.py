"""Untrusted text made inert on a terminal: no escape sequence, no control character.

Model output can hold ANSI/VT sequences: CSI (colours, cursor moves, clearing the screen), OSC
(window titles, ``ESC ]8`` hyperlinks whose target differs from the text shown, clipboard writes
with ``ESC ]52``), DCS and the rest; a carriage return or backspace can overwrite what was
printed before it, and bidirectional overrides can reorder it. Printed raw in ``mlxstack matrix
diff`` or pytest's summary they act on the reader's terminal, so every sequence is removed whole
(its parameters too) and every other control character dropped.
"""

from __future__ import annotations

import re

# An escape sequence whole: CSI (7-bit or 8-bit), string sequences (OSC, DCS, SOS, PM, APC)
# up to their terminator (BEL or ST) or the end of the text, and the two-character escapes.
_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|\Z)
    | \x1b [\x20-\x2f]* [\x30-\x7e]?
    """,
    re.VERBOSE | re.DOTALL,
)
# C0 and C1 controls and DEL, except tab and newline; bidirectional embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069), which reorder what follows them on screen.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """``text`` without escape sequences and control characters; tabs and newlines stay."""
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


def one_line(text: str, limit: int | None = None) -> str:
    """``plain(text)`` on one line (runs of whitespace become one space), cut at ``limit``."""
    flat = " ".join(plain(text).split())
    if limit is not None and len(flat) > limit:
        return flat[: limit - 1] + "…"
    return flat
