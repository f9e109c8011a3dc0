"""Text from a program or a file, made safe to put in the HTML report.

Every string the HTML report shows came from somewhere tracethread does not control: lock
and thread names, file paths, stack lines, messages, a report file someone handed us. Each
goes through one of the two functions here and nothing else:

- ``esc``: element text and attribute values, in HTML and in inline SVG alike (the HTML
  parser reads both). Control characters are shown escaped as in the terminal report
  (``\\x1b``: HTML forbids most of them and a browser would drop or replace them
  silently), lone surrogates (a Python string may hold one; UTF-8 cannot) are shown as
  ``\\ud800``, then ``&<>"'`` become character references.
- ``script_json``: data embedded in a ``<script type="application/json">``. A script
  element ends at the first ``</script`` whatever the quotes say, and ``<!--`` changes how
  the parser looks for that end; JSON's ``\\u003c`` for every ``<`` (and ``>``, ``&``)
  leaves neither, and ``JSON.parse`` gives the same string back.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ..._core import api as core


def plain(value: Any) -> str:
    """``value`` as text to show literally, not yet HTML-escaped: control characters and
    lone surrogates escaped (what a length or a truncation is measured on)."""
    text = core.literal(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def esc(value: Any) -> str:
    """``value`` as HTML text or a quoted attribute value."""
    return html.escape(plain(value), quote=True)


def script_json(data: Any) -> str:
    """``data`` as JSON that cannot end or alter the ``<script>`` element holding it."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, keeping its end (a path's file and line) and
    marking the cut with an ellipsis."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
