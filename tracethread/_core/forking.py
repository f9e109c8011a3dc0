"""What ``fork()`` does to the core's own state.

A forked child has one thread: the one that called ``fork()``. Every raw lock another
thread held at that moment stays locked forever in the child, and whatever that thread was
updating under it (the lock-order graph, the findings, the watchdog's registry) is left
half-done. So the core takes its own locks *before* the fork — the fork happens between
two updates, never inside one — releases them in the parent, and re-initializes them in
the child (``_at_fork_reinit``: the fork-safe way, as CPython's ``threading`` does for its
own locks). The record stream's locks are re-made by ``stream._after_fork_in_child``, the
summaries' by ``summaries._after_fork_in_child``.

In the child, the other threads are gone: their states are dropped from the registry of
live states (a thread blocked in the parent at the fork is not hung in the child), and the
watchdog, whose thread did not survive, is started again if a hang timeout is set.

The locks are taken in one order (graph, findings, watchdog) and none of them is ever held
while taking another or while calling out of the core, so the ``before`` hook cannot
deadlock with a thread that holds one: it waits a few microseconds at most.
"""

from __future__ import annotations

import os

from . import detect, findings, watchdog
from .state import current_state, states


def _locks() -> tuple:
    return (detect._graph_lock, findings._lock, watchdog._lock)


def _before() -> None:
    for lock in _locks():
        lock.acquire()


def _after_in_parent() -> None:
    for lock in reversed(_locks()):
        lock.release()


def _after_in_child() -> None:
    for lock in _locks():
        lock._at_fork_reinit()
    me = current_state()
    for st in list(states):
        if st is not me:
            states.discard(st)
    watchdog._running[0] = False
    watchdog.ensure_running()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent,
                        after_in_child=_after_in_child)
