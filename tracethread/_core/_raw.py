"""The raw originals, bound once at import.

Like CPython's ``threading`` binds ``_allocate_lock = _thread.allocate_lock``, the core
keeps its own references to the untraced building blocks, so that patching the
``threading`` module (``tracethread.install()``) can never redirect the tracer's own
locks onto traced ones.
"""

from __future__ import annotations

import _thread
from typing import Any
import threading as _std

allocate_lock = _thread.allocate_lock
get_ident = _thread.get_ident
get_native_id = _thread.get_native_id
start_new_thread = _thread.start_new_thread
TIMEOUT_MAX = _thread.TIMEOUT_MAX
local = _thread._local

# The stdlib's own classes, captured before install() can replace the names.
StdThread = _std.Thread
StdCondition: Any = _std.Condition   # (used by its private members: _lock, _waiters)
StdEvent = _std.Event
StdSemaphore = _std.Semaphore
StdBoundedSemaphore = _std.BoundedSemaphore
StdBarrier = _std.Barrier
StdTimer = _std.Timer
StdLock = _std.Lock
StdRLock = _std.RLock
BrokenBarrierError = _std.BrokenBarrierError
# ident -> Thread, read-only use (a private name, not in typeshed's threading)
std_active = _std._active  # type: ignore[attr-defined]
THREADING_FILE = _std.__file__


def main_ident() -> int:
    """The main thread's ident (``threading.main_thread()``, stdlib's: after a fork, the
    thread that forked)."""
    return _std.main_thread().ident or 0
