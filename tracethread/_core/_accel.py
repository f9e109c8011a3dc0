"""The optional C fast paths (``tracethread._speedups``), or None.

``TRACETHREAD_PURE_PYTHON=1`` turns them off (the tests run both ways)."""

from __future__ import annotations

import os
from typing import Any

speedups: Any
if os.environ.get("TRACETHREAD_PURE_PYTHON", "") not in ("", "0"):
    speedups = None
else:
    try:
        from .. import _speedups as speedups  # type: ignore[attr-defined,no-redef]
    except ImportError:
        speedups = None
