r"""Untrusted text made inert in Markdown (a CI job summary): it reads as the text it is.

``![x](http://...)`` would load an image from anywhere, ``[click](javascript:...)`` or a bare
``https://`` URL would be a live link, ``|`` would split a table cell, ``<b>`` would be HTML,
``$x$`` math, ``:x:`` an emoji, ``*a*`` emphasis. CommonMark shows any ASCII punctuation
character escaped with a backslash literally, so every character that can start or close such
a construct is escaped (``:`` and ``.`` too: ``http\://`` and ``www\.`` are no autolinks), and
the text renders exactly as written. Left alone: ``-``, quotes, ``,;/=?%``, which start nothing
inside a line. Control characters go first (``terminal.plain``).
"""

from __future__ import annotations

import re

from pytest_mlxstack.text.terminal import one_line

_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+!|~:@$&.^])")


def inline(text: str, limit: int | None = 160) -> str:
    """``text`` as literal Markdown on one line (a table cell, a list item)."""
    return _MARKUP.sub(r"\\\1", one_line(text, limit))


def code(text: str, limit: int | None = 160) -> str:
    """``text`` for the inside of a single-backtick code span, where escapes do not work:
    one line, and a backtick (which would end the span) becomes a quote."""
    return one_line(text, limit).replace("`", "'")
