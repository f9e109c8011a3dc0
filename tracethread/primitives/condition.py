"""Condition: the stdlib's implementation (waiters are raw locks), recorded.

``wait`` records start, end and whether it was notified or timed out; ``notify(n)`` and
``notify_all`` record how many waiters they woke. The lock's own release/re-acquire inside
``wait`` are recorded by the lock (marked ``via: condition.wait`` for an RLock).
"""

from __future__ import annotations

from collections import deque as _deque
from time import monotonic as _time
from typing import TYPE_CHECKING, Any, Callable

from .._core import _raw
from .._core import stream as _stream
from .._core import summaries as _sum
from .._core._accel import speedups
from .._core.records import (
    CONDITION_NOTIFY, CONDITION_NOTIFY_ALL, CONDITION_WAIT, caller_site,
)
from ._base import (
    ConditionStatistics, StdCompatMeta, as_timeout, bind_append, current_state, make_info,
    new_state, now_ns, record, seq, std_signature, tls, use_raw,
)

from .lock import Lock, RLock

_append: Any = None  # bound to the record buffer by bind_append
bind_append(globals())
_aggregating = _sum.aggregating   # [bool]: notifies are only counted
_bump = _sum.bump
_NOTIFIES, _WAKEUPS, _WOKEN = _sum.A_NOTIFIES, _sum.A_WAKEUPS, _sum.A_WOKEN

_allocate_lock = _raw.allocate_lock
# A Condition's default RLock (in C with the extension).
_rlock_for_condition = (speedups.rlock_for_condition if speedups is not None
                        else RLock._for_condition)


class _PyCondFast:
    """Condition's enter/exit without the C extension (as the stdlib's)."""

    __slots__ = ()
    _lock: Any   # (in the instance's __dict__ here; CondCore holds it in C)

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *args: Any) -> Any:
        return self._lock.__exit__(*args)


# With the extension, ``with condition:`` over tracethread's Lock/RLock is one C call.
if TYPE_CHECKING:   # the twins: the type checker is shown the pure-Python one
    _CondBase = _PyCondFast
else:
    _CondBase = speedups.CondCore if speedups is not None else _PyCondFast


_PURE = speedups is None


class Condition(_CondBase, metaclass=StdCompatMeta):
    """``threading.Condition``, recorded. Accepts ``name=``."""

    # Slots for what every Condition sets (faster to set than a dict's keys, and no dict:
    # one per Future); a __dict__ still for anything a program adds, as on the stdlib's.
    # With the C extension, CondCore holds ``_lock`` and the summary counters, and its C
    # methods acquire, release, _release_save, _acquire_restore and _is_owned go to
    # tracethread's own Lock/RLock directly; over any other lock, __init__ stores the
    # lock's methods in the __dict__ as the stdlib does (they come first), and where the
    # lock has none the ``_default_*`` methods below run (the stdlib's class methods).
    # Without it, the protocol goes in slots and the __dict__ as the stdlib's, and the
    # counters in ``_agg`` (summaries.bump).
    __slots__ = ("_info", "_waiters", "__dict__", "__weakref__") + (
        ("acquire", "release", "_agg") if _PURE else ())

    _std_twins = (_raw.StdCondition,)
    _waiters: _deque[Any]   # the waiters' raw locks
    if TYPE_CHECKING:   # set per instance (the lock's) or per class below (the defaults)
        acquire: Callable[..., bool]
        release: Callable[..., None]
        _is_owned: Callable[..., bool]
        _release_save: Callable[..., Any]
        _acquire_restore: Callable[..., None]
        _tt_take: Callable[..., Any]
        notify: Callable[..., None]
        notify_all: Callable[..., None]
        wait: Callable[..., bool]
    _tt_signature = std_signature(_raw.StdCondition)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Condition and use_raw():
            kwargs.pop("name", None)
            return _raw.StdCondition(*args, **kwargs)
        return _CondBase.__new__(cls)

    def __init__(self, lock: Any = None, *, name: str | None = None) -> None:
        self._info = info = make_info("Condition", name)
        if lock is None:
            lock = _rlock_for_condition(info)
        self._lock = lock
        self._waiters = _deque()
        if _PURE:
            self._agg = None  # summary counters (summaries.bump)
        elif type(lock) is RLock or type(lock) is Lock:
            return   # CondCore's methods go to the lock (five objects less)
        # Export the lock's acquire() and release() methods
        self.acquire = lock.acquire
        self.release = lock.release
        # If the lock defines _release_save() and/or _acquire_restore(), these override the
        # default implementations (which just call release() and acquire() on the lock).
        # Ditto for _is_owned().
        try:
            self._release_save = lock._release_save
        except AttributeError:
            pass
        try:
            self._acquire_restore = lock._acquire_restore
        except AttributeError:
            pass
        try:
            self._is_owned = lock._is_owned
        except AttributeError:
            pass   # (the class's: _default_is_owned, which a subclass may override)

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._waiters.clear()

    def __repr__(self) -> str:
        return "<Condition(%s, %d)>" % (self._lock, len(self._waiters))

    def _default_release_save(self) -> None:
        self._lock.release()           # No state to save

    def _default_acquire_restore(self, x: Any) -> None:
        self._lock.acquire()           # Ignore saved state

    def _default_is_owned(self) -> bool:
        # Return True if lock is owned by current_thread.
        # This method is called only if _lock doesn't have _is_owned().
        if type(self._lock) is Lock:
            # Same answer as the stdlib's try-acquire probe, without recording one.
            return self._lock._lock.locked()
        if self._lock.acquire(False):
            self._lock.release()
            return False
        else:
            return True

    def _wait_py(self, timeout: float | None = None) -> bool:
        """Wait until notified or until a timeout occurs (see ``threading.Condition``)."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        st = current_state()
        recording = not st.guard and _stream.listening[0]   # (no sink: no record)
        if recording:
            site = caller_site(2)
            t0 = now_ns()
        waiter = _allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        saved_state = self._release_save()
        gotit = False
        waits = True   # False for a timeout <= 0: one look, not a wait (OUTCOME_POLICY)
        try:    # restore state no matter what (e.g., KeyboardInterrupt)
            st.waiting = self._info
            st.wait_since = now_ns()
            st.wait_bounded = timeout is not None
            if timeout is None:
                waiter.acquire()
                gotit = True
            else:
                if timeout > 0:
                    gotit = waiter.acquire(True, timeout)
                else:
                    waits = False
                    gotit = waiter.acquire(False)
            return gotit
        finally:
            st.waiting = None
            t1 = now_ns() if recording else 0
            self._acquire_restore(saved_state)
            if not gotit:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            if recording:
                _append((
                    seq(), CONDITION_WAIT, self._info, st, t0, t1, gotit, waits, None,
                    site if waits else None,
                    (as_timeout(timeout), now_ns(),
                     _stream.capture_context() if waits else None)))

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until a condition evaluates to True (see ``threading.Condition``)."""
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = _time() + waittime
                else:
                    waittime = endtime - _time()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def _notify_py(self, n: int = 1) -> None:
        """Wake up one or more threads waiting on this condition, if any."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        woken = self._wake(n) if self._waiters else 0
        try:
            st = tls.st
        except AttributeError:
            st = new_state()
        if not st.guard:
            if _aggregating[0]:
                self._count_notify(st, woken)
            else:
                record(CONDITION_NOTIFY, self._info, st, None, woken > 0, False, None, None,
                       (n, woken))

    def _count_notify(self, st: Any, woken: int) -> None:
        """A notify in the summary: one that woke nobody, or a wake-up and how many."""
        if woken:
            _bump(self, st, _WAKEUPS)
            _bump(self, st, _WOKEN, woken)
        else:
            _bump(self, st, _NOTIFIES)

    def _wake(self, n: int) -> int:
        woken = 0
        waiters = self._waiters
        while waiters and n > 0:
            waiter = waiters[0]
            try:
                waiter.release()
            except RuntimeError:
                # gh-92530: The previous call of notify() released the lock,
                # but was interrupted before removing it from the queue.
                pass
            else:
                n -= 1
                woken += 1
            try:
                waiters.remove(waiter)
            except ValueError:
                pass
        return woken

    def _notify_all_py(self) -> None:
        """Wake up all threads waiting on this condition."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        n = len(self._waiters)
        woken = self._wake(n) if n else 0
        st = current_state()
        if not st.guard:
            if _aggregating[0]:
                self._count_notify(st, woken)
            else:
                record(CONDITION_NOTIFY_ALL, self._info, st, None, woken > 0, False, None,
                       None, (n, woken))

    def notifyAll(self) -> None:
        """Wake up all threads waiting on this condition.

        This method is deprecated, use notify_all() instead.
        """
        import warnings
        warnings.warn('notifyAll() is deprecated, use notify_all() instead',
                      DeprecationWarning, stacklevel=2)
        self.notify_all()

    def statistics(self) -> ConditionStatistics:
        stats = getattr(self._lock, "statistics", None)
        return ConditionStatistics(name=self._info.name, kind="Condition",
                                   waiters=len(self._waiters),
                                   lock=stats() if stats is not None else None)

    @property
    def name(self) -> str:
        return self._info.name


if speedups is None:
    # (named as what they are here: a bad call's error says Condition.notify(), as the
    # stdlib's does)
    for _f, _name in ((Condition._notify_py, "notify"),
                      (Condition._notify_all_py, "notify_all"), (Condition._wait_py, "wait")):
        _f.__name__, _f.__qualname__ = _name, f"Condition.{_name}"
    del _f, _name
    Condition.notify = Condition._notify_py
    Condition.notify_all = Condition._notify_all_py
    Condition.wait = Condition._wait_py
    Condition._release_save = Condition._default_release_save
    Condition._acquire_restore = Condition._default_acquire_restore
    Condition._is_owned = Condition._default_is_owned
    Condition._tt_take = _sum.py_take
else:
    # notify and wait over tracethread's own Lock/RLock in C (condition.c); anything else
    # (errors, another lock, an n or timeout of another type) calls the methods above.
    # Python functions around the C ones keep the stdlib's signatures (self, n=1).
    _c_notify = speedups.CondCore._c_notify
    _c_notify_all = speedups.CondCore._c_notify_all
    _c_wait = speedups.CondCore._c_wait

    def wait(self: Condition, timeout: float | None = None) -> bool:
        """Wait until notified or until a timeout occurs (see ``threading.Condition``)."""
        if type(self) is Condition:
            return _c_wait(self, timeout)
        return self._wait_py(timeout)   # (a subclass may override the lock protocol)

    def notify(self: Condition, n: int = 1) -> None:
        """Wake up one or more threads waiting on this condition, if any."""
        return _c_notify(self, n)

    def notify_all(self: Condition) -> None:
        """Wake up all threads waiting on this condition."""
        return _c_notify_all(self)

    notify.__qualname__ = "Condition.notify"
    notify_all.__qualname__ = "Condition.notify_all"
    wait.__qualname__ = "Condition.wait"
    Condition.notify = notify
    Condition.notify_all = notify_all
    Condition.wait = wait
Condition.__module__ = "tracethread"
