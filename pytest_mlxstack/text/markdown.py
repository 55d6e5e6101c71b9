"""Untrusted text made inert in Markdown (a CI job summary): it reads as the text it is.

``![x](http://...)`` would load an image from anywhere, ``[click](javascript:...)`` or a bare
``https://`` URL would be a live link, ``|`` would split a table cell, ``<b>`` would be HTML,
``$x$`` math, ``:x:`` an emoji. CommonMark lets any ASCII punctuation character be escaped with
a backslash and then shows it literally, so every one is escaped: no construct can start, and
the text renders exactly as written. Control characters go first (``terminal.plain``).
"""

from __future__ import annotations

import re

from pytest_mlxstack.text.terminal import one_line

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def inline(text: str, limit: int | None = 160) -> str:
    """``text`` as literal Markdown on one line (a table cell, a list item)."""
    return _PUNCTUATION.sub(r"\\\1", one_line(text, limit))


def code(text: str, limit: int | None = 160) -> str:
    """``text`` for the inside of a single-backtick code span, where escapes do not work:
    one line, and a backtick (which would end the span) becomes a quote."""
    return one_line(text, limit).replace("`", "'")
