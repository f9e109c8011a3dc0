"""tracethread: the ``threading`` module, reimplemented so that it can be watched.

Every name of ``threading.__all__`` is here with the stdlib's signature and behaviour; the
primitives record every operation. ``install()`` puts them under unmodified programs.
Nothing here imports the OpenTelemetry SDK or rich: exporters load them when used.
"""

from __future__ import annotations

import threading as _threading

from ._core import (
    PrimitiveInfo, Record, Site, ThreadInfo, add_sink, flush, guarded, remove_sink,
    set_buffer_size, sinks,
)
from ._core import stats as recorder_stats
from ._core.records import ALL_OPS
from ._core.config import Config, configure
from ._core.config import get as config
from ._core.findings import DeadlockError, Finding, PotentialDeadlockWarning, findings
from ._core.findings import clear as clear_findings
from .patching import install, installed, is_installed, patched_names, uninstall
from .wrapping import wrap
from .primitives import (
    Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Lock, RLock, Semaphore,
    Thread, Timer,
)

__version__ = "0.1.0"

_OURS = {"Barrier", "BoundedSemaphore", "BrokenBarrierError", "Condition", "Event", "Lock",
         "RLock", "Semaphore", "Thread", "Timer"}

# Everything else of the running interpreter's threading.__all__ is the stdlib's own object
# (current_thread, enumerate, local, excepthook, settrace_all_threads on 3.12+ …), plus the
# legacy camelCase module functions threading still carries.
# ``excepthook`` is settable (and pytest and others set it): always the current one.
_LIVE = {"excepthook"}
for _name in list(_threading.__all__) + ["currentThread", "activeCount"]:
    if _name not in _OURS and _name not in _LIVE and hasattr(_threading, _name):
        globals()[_name] = getattr(_threading, _name)
del _name


def __getattr__(name: str) -> object:
    if name in _LIVE:
        return getattr(_threading, name)
    raise AttributeError(f"module 'tracethread' has no attribute {name!r}")

__all__ = list(_threading.__all__) + [
    "configure", "config", "Config", "findings", "clear_findings", "Finding", "DeadlockError",
    "PotentialDeadlockWarning", "wrap", "install", "uninstall", "installed", "is_installed",
    "patched_names", "add_sink",
    "remove_sink", "sinks", "flush", "guarded", "set_buffer_size", "recorder_stats",
    "Record", "PrimitiveInfo", "ThreadInfo", "Site", "ALL_OPS",
]
