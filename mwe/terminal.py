"""Data shown on a terminal is shown, never interpreted.

Item text, descriptions, paths and model output can hold anything: rich markup
(``[/INST]``, ``[link=...]``), ANSI and OSC escape sequences, carriage returns. Every piece of
data the CLI prints goes through :func:`shown` (for rich) or :func:`plain` (for plain text), so
it is displayed as written and cannot restyle, hide or rewrite what is on the screen.
"""

from __future__ import annotations

import re

from rich.markup import escape

# C0 controls but tab and newline, DEL, and C1 controls (which include the 8-bit CSI and OSC).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\n\u2028\u2029]")


def _visible(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]  # '\x1b' -> \x1b, shown as four characters


def plain(text: object, *, one_line: bool = False) -> str:
    """``text`` with control characters written out as escapes (``\\x1b``); with
    ``one_line``, line breaks too, so the result is exactly one line."""
    value = _CONTROL.sub(_visible, str(text))
    return _LINE_BREAKS.sub(_visible, value) if one_line else value


def shown(text: object, *, one_line: bool = False) -> str:
    """:func:`plain`, then escaped for rich, so that markup in data is printed as it is."""
    return escape(plain(text, one_line=one_line))
