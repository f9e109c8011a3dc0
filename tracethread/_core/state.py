"""Per-thread state: each thread's ``ThreadState``, reached through a raw thread-local
(so it dies with its thread and a reused ident never inherits it), and the registry of
every live one (the watchdog and the wait-for check read it).

The bottom of the core with ``records``: it imports nothing else of it.
"""

from __future__ import annotations

import weakref
from typing import Any

from . import _raw
from .records import ThreadState

_tls = _raw.local()
# Every thread state alive (weak: a state goes with its thread).
states: "weakref.WeakSet[Any]" = weakref.WeakSet()


def new_state() -> ThreadState:
    """Create this thread's state on its first operation."""
    ident = _raw.get_ident()
    t = _raw.std_active.get(ident)
    name = t.name if t is not None else f"thread-{ident}"
    st = ThreadState(ident, _raw.get_native_id(), name)
    _tls.st = st
    states.add(st)
    return st


def live_states(frames: dict) -> dict[int, ThreadState]:
    """ident -> the state of each thread in ``frames`` (``sys._current_frames()``), for the
    threads that have one. Idents are reused: a state whose thread ended, kept alive by a
    reference, is not the state of the thread now using its ident; the newest is."""
    by_ident: dict[int, ThreadState] = {}
    for s in list(states):
        cur = by_ident.get(s.ident)
        if cur is None or s.uid > cur.uid:
            by_ident[s.ident] = s
    return {ident: s for ident, s in by_ident.items() if ident in frames}


def current_state() -> ThreadState:
    try:
        return _tls.st
    except AttributeError:
        return new_state()


def tls():
    """The thread-local whose ``st`` attribute holds the thread's state (hot paths read
    it directly: ``try: st = tls.st except AttributeError: st = new_state()``)."""
    return _tls


class guarded:
    """Context manager: operations of this thread inside it are not recorded, and
    primitives constructed inside it are plain stdlib ones. Re-entrant."""

    __slots__ = ("_st", "_prev")

    def __enter__(self) -> "guarded":
        st = self._st = current_state()
        self._prev = st.guard
        st.guard = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._st.guard = self._prev


def is_guarded() -> bool:
    return current_state().guard
