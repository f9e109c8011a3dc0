"""Event: the stdlib's implementation on a raw condition; set, clear and wait recorded —
or, while summaries are on, counted when they neither waited nor woke a thread (see
_core/summaries.py). A ``wait`` with a timeout of 0 or less is a look at the flag,
never recorded as blocked or timed out."""

from __future__ import annotations

from typing import Any

from .._core import _raw
from .._core import stream as _stream
from .._core import summaries as _sum
from .._core.records import EVENT_CLEAR, EVENT_SET, EVENT_WAIT, caller_site
from ._base import (
    EventStatistics, StdCompatMeta, as_timeout, current_state, make_info, now_ns, record,
    std_signature, use_raw,
)

_listening = _stream.listening   # [bool]: a sink is attached

_aggregating = _sum.aggregating
_bump = _sum.bump
_SETS, _CLEARS, _WAITS = _sum.A_SETS, _sum.A_CLEARS, _sum.A_POLLS


class Event(metaclass=StdCompatMeta):
    """``threading.Event``, recorded. Accepts ``name=``."""

    _std_twins = (_raw.StdEvent,)
    _tt_signature = std_signature(_raw.StdEvent)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Event and use_raw():
            kwargs.pop("name", None)
            return _raw.StdEvent(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, *, name: str | None = None) -> None:
        # the stdlib's Condition, used by its private members (_lock, _waiters) as Event does
        self._cond = _raw.StdCondition(_raw.allocate_lock())
        self._mutex = self._cond._lock
        self._flag = False
        self._info = make_info("Event", name)
        self._agg = None  # summary counters (summaries.bump)

    _tt_take = _sum.py_take

    def __repr__(self) -> str:
        cls = self.__class__
        status = 'set' if self._flag else 'unset'
        return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: {status}>"

    def _at_fork_reinit(self) -> None:
        # Private method called by Thread._reset_internal_locks()
        self._cond._at_fork_reinit()
        self._mutex = self._cond._lock

    def is_set(self) -> bool:
        """Return true if and only if the internal flag is true."""
        return self._flag

    def isSet(self) -> bool:
        """Return true if and only if the internal flag is true.

        This method is deprecated, use is_set() instead.
        """
        import warnings
        warnings.warn('isSet() is deprecated, use is_set() instead',
                      DeprecationWarning, stacklevel=2)
        return self.is_set()

    def set(self) -> None:
        """Set the internal flag to true, waking every waiting thread."""
        mutex = self._mutex
        mutex.acquire()
        try:
            self._flag = True
            woken = len(self._cond._waiters)
            if woken:
                self._cond.notify_all()
        finally:
            mutex.release()
        self._record(EVENT_SET, _SETS, woken)

    def clear(self) -> None:
        """Reset the internal flag to false."""
        mutex = self._mutex
        mutex.acquire()
        self._flag = False
        mutex.release()
        self._record(EVENT_CLEAR, _CLEARS, 0)

    def _record(self, op: str, counter: int, woken: int) -> None:
        st = current_state()
        if not st.guard:
            if not woken and _aggregating[0]:
                _bump(self, st, counter)
            else:
                record(op, self._info, st, None, True, False, None, None,
                       (woken,) if op == EVENT_SET else None)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the internal flag is true, or until the optional timeout occurs."""
        st = current_state()
        mutex = self._mutex
        mutex.acquire()
        if self._flag:
            mutex.release()
            if not st.guard:
                if _aggregating[0]:
                    _bump(self, st, _WAITS)
                else:
                    record(EVENT_WAIT, self._info, st, None, True, False, None, None,
                           (as_timeout(timeout), None))
            return True
        mutex.release()
        return self._wait_slow(st, timeout)

    def _wait_slow(self, st: Any, timeout: Any) -> bool:
        blocked = False
        site = None
        t0 = None
        with self._cond:
            signaled = self._flag
            if not signaled:
                # (``timeout > 0`` first, as the stdlib compares: the same error for a
                # timeout of the wrong type)
                if timeout is not None and not timeout > 0:
                    signaled = self._cond.wait(timeout)   # the stdlib's one look
                else:
                    blocked = True
                    t0 = now_ns()
                    if not st.guard and _listening[0]:
                        site = caller_site(2)
                    st.waiting = self._info
                    st.wait_since = now_ns()
                    st.wait_bounded = timeout is not None
                    try:
                        signaled = self._cond.wait(timeout)
                    finally:
                        st.waiting = None
        if not st.guard:
            if not blocked and _aggregating[0]:
                _bump(self, st, _WAITS)
            elif _listening[0]:
                record(EVENT_WAIT, self._info, st, t0 if blocked else None, signaled, blocked,
                       None, site, (as_timeout(timeout),
                                    _stream.capture_context() if blocked else None))
        return signaled

    def statistics(self) -> EventStatistics:
        return EventStatistics(name=self._info.name, kind="Event", is_set=self._flag,
                               waiters=len(self._cond._waiters))

    @property
    def name(self) -> str:
        return self._info.name


Event.__module__ = "tracethread"
