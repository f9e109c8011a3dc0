"""Semaphore and BoundedSemaphore: the stdlib's implementation on a raw condition, with a
record for every acquire (acquired or not, whether it waited, for how long) and release —
or, while summaries are on, a count for each acquire that did not wait and each release
that woke nobody (see _core/summaries.py).

The fast paths take the condition's raw lock directly (what ``with self._cond`` does,
without its two Python calls). An acquire that may not wait — ``blocking=False``, or a
``timeout`` of 0 or less — is a try-acquire: never recorded as blocked or timed out, as
for a Lock; it still takes the stdlib's one look at the condition.
"""

from __future__ import annotations

from time import monotonic as _time
from typing import Any

from .._core import _raw
from .._core import stream as _stream
from .._core import summaries as _sum
from .._core import detect as _detect
from .._core.records import SEMAPHORE_ACQUIRE, SEMAPHORE_RELEASE, caller_site
from ._base import (
    SemaphoreStatistics, StdCompatMeta, as_timeout, current_state, is_foreign, make_info,
    now_ns, record, std_signature, use_raw,
)

_listening = _stream.listening   # [bool]: a sink is attached

_aggregating = _sum.aggregating
_bump = _sum.bump
_ACQUIRES, _FAILURES, _RELEASES = _sum.A_ACQUIRES, _sum.A_FAILURES, _sum.A_SEM_RELEASES


def _raw_condition() -> Any:
    return _raw.StdCondition(_raw.allocate_lock())


# Up to 3.11 the stdlib's release(n) wakes waiters with ``for i in range(n)``, run whether
# anybody waits or not: an n that is not an int (1.5) is refused with range()'s TypeError,
# after the counter has grown. From 3.12 on it calls notify(n), which takes any n. Read
# from the running stdlib's own code.
_N_BY_RANGE = "range" in getattr(getattr(_raw.StdSemaphore.release, "__code__", None),
                                  "co_names", ())


def _whole(n: Any) -> int:
    """How many holders a ``release(n)`` of a non-int n (1.5: taken from 3.12 on) lets go."""
    try:
        return int(n)
    except Exception:  # noqa: BLE001 - bookkeeping only: the release itself succeeded
        return 1


def _positive(timeout: Any) -> bool:
    """``timeout > 0`` for tracethread's own bookkeeping: a timeout the stdlib took without
    a look (the counter was not 0: ``acquire(timeout='x')``) must not fail here."""
    try:
        return bool(timeout > 0)
    except Exception:  # noqa: BLE001 - any answer will do; the acquire succeeded
        return True


class Semaphore(metaclass=StdCompatMeta):
    """``threading.Semaphore``, recorded. Accepts ``name=``."""

    _std_twins = (_raw.StdSemaphore,)
    _tt_signature = std_signature(_raw.StdSemaphore)
    _kind = "Semaphore"
    _bounded = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls in (Semaphore, BoundedSemaphore) and use_raw():
            kwargs.pop("name", None)
            std = _raw.StdSemaphore if cls is Semaphore else _raw.StdBoundedSemaphore
            return std(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        if is_foreign(Semaphore, self):  # the stdlib's BoundedSemaphore, after install()
            _raw.StdSemaphore.__init__(self, value)  # type: ignore[arg-type]  # (a stdlib self)
            return
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._cond = _raw_condition()
        self._mutex = self._cond._lock
        self._value = value
        self._initial_value = value
        self._info = make_info(self._kind, name)
        self._holders: list = []  # thread states holding it (as a lock), oldest first
        # None until seen: True once released by the thread that acquired it (it enters the
        # lock-order graph), False once released by another thread (a signal: never).
        self._as_lock: bool | None = None
        self._agg = None  # summary counters (summaries.bump)

    _tt_take = _sum.py_take

    def __repr__(self) -> str:
        cls = self.__class__
        return (f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}:"
                f" value={self._value}>")

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire a semaphore, decrementing the internal counter by one (see
        ``threading.Semaphore.acquire``)."""
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        st = current_state()
        mutex = self._mutex
        mutex.acquire()
        if self._value:
            self._value -= 1
            mutex.release()
            if not st.guard:
                self._acquired(st, blocking, timeout)
                if _aggregating[0]:
                    _bump(self, st, _ACQUIRES)
                else:
                    record(SEMAPHORE_ACQUIRE, self._info, st, None, True, False, None, None,
                           (bool(blocking), as_timeout(timeout), None))
            return True
        mutex.release()
        return self._acquire_slow(st, blocking, timeout)

    def _acquire_slow(self, st: Any, blocking: Any, timeout: Any) -> bool:
        """The stdlib's loop (the counter was 0 a moment ago), recording the wait."""
        t0 = None
        site = None
        blocked = False
        rc = False
        endtime = None
        requested_timeout = timeout
        with self._cond:
            while self._value == 0:
                if not blocking:
                    break
                if timeout is not None:
                    if endtime is None:
                        endtime = _time() + timeout
                    else:
                        timeout = endtime - _time()
                        if timeout <= 0:
                            break
                if timeout is not None and not timeout > 0:
                    self._cond.wait(timeout)   # a timeout <= 0: the stdlib's one look
                    continue
                if not blocked:
                    blocked = True
                    t0 = now_ns()
                    if not st.guard and _listening[0]:
                        site = caller_site(2)
                st.waiting = self._info
                st.wait_since = now_ns()
                st.wait_bounded = timeout is not None
                st.blocked_on = self if timeout is None else None   # (its holders: hangs)
                try:
                    self._cond.wait(timeout)
                finally:
                    st.waiting = None
                    st.blocked_on = None
            else:
                self._value -= 1
                rc = True
        if st.guard:
            return rc
        if rc:
            self._acquired(st, blocking, requested_timeout)
        if not blocked and _aggregating[0]:
            _bump(self, st, _ACQUIRES if rc else _FAILURES)
        elif _listening[0]:
            record(SEMAPHORE_ACQUIRE, self._info, st, t0 if blocked else None, rc, blocked,
                   None, site, (bool(blocking),
                                as_timeout(requested_timeout),
                                _stream.capture_context() if blocked else None))
        return rc

    def _acquired(self, st: Any, blocking: Any, timeout: Any) -> None:
        """Who holds it, until it is released: by the same thread (then it is used as a
        mutex and joins the lock-order graph) or by another (a signal: it never does).
        Once it is known to be a signal, nobody needs to know who holds it."""
        if self._as_lock is False:
            return
        self._holders.append(st)
        if self._as_lock:
            if blocking and st.held and (timeout is None or _positive(timeout)):
                _detect.on_acquire(st, self, timeout is not None)
            st.held.append(self)

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        """Release a semaphore, incrementing the internal counter by one or more."""
        if n < 1:
            raise ValueError('n must be one or more')
        mutex = self._mutex
        mutex.acquire()
        try:
            if self._bounded and self._value + n > self._initial_value:
                raise ValueError("Semaphore released too many times")
            self._value += n
            if _N_BY_RANGE and n.__class__ is not int:
                range(n)   # the stdlib's error for such an n (see _N_BY_RANGE)
            waiters = self._cond._waiters
            woken = len(waiters)
            if woken:
                for i in range(n):
                    self._cond.notify()
                woken -= len(waiters)
        finally:
            mutex.release()
        self._record_release(n, woken)

    def _record_release(self, n: int, woken: int) -> None:
        st = current_state()
        holders = self._holders
        if holders:
            for _ in range(n if n.__class__ is int else _whole(n)):
                if st in holders:
                    holders.remove(st)
                    held = st.held
                    if held and held[-1] is self:
                        held.pop()
                    elif self in held:
                        _detect.released_elsewhere(st, self, st)
                    if self._as_lock is None:
                        self._as_lock = True  # acquired and released by one thread: a mutex
                elif holders:
                    self._as_lock = False  # released by another thread: a signal
                    _detect.released_elsewhere(holders.pop(0), self, st)
                else:
                    break
        if not st.guard:
            if not woken and _aggregating[0]:
                _bump(self, st, _RELEASES)
            else:
                record(SEMAPHORE_RELEASE, self._info, st, None, True, False, None, None, (n,))

    def __exit__(self, t: Any, v: Any, tb: Any) -> None:
        self.release()

    def statistics(self) -> SemaphoreStatistics:
        return SemaphoreStatistics(name=self._info.name, kind=self._kind, value=self._value,
                                   initial_value=self._initial_value,
                                   waiters=len(self._cond._waiters))

    @property
    def name(self) -> str:
        return self._info.name


class BoundedSemaphore(Semaphore):
    """``threading.BoundedSemaphore``, recorded. Accepts ``name=``."""

    _std_twins = (_raw.StdBoundedSemaphore,)
    _tt_signature = std_signature(_raw.StdBoundedSemaphore)
    _kind = "BoundedSemaphore"
    _bounded = True

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        if is_foreign(BoundedSemaphore, self):  # threading.BoundedSemaphore.__init__(self)
            # from a stdlib subclass (self is the stdlib's object)
            _raw.StdBoundedSemaphore.__init__(self, value)  # type: ignore[arg-type]
            return
        Semaphore.__init__(self, value, name=name)

    def __repr__(self) -> str:
        cls = self.__class__
        return (f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}:"
                f" value={self._value}/{self._initial_value}>")


Semaphore.__module__ = BoundedSemaphore.__module__ = "tracethread"
