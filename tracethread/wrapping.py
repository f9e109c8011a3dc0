"""``tracethread.wrap(lock)``: trace a lock that already exists.

``install()`` only reaches primitives constructed after it; a lock made earlier (a module
global like ``logging._lock``) can be traced in place by wrapping it and putting the proxy
where the original was::

    logging._lock = tracethread.wrap(logging._lock, name="logging._lock")

The proxy is a ``wrapt.ObjectProxy``: it shares the original's state (the same underlying
lock, held or not), passes ``isinstance`` checks against the original's type, and forwards
everything it does not trace. Acquire and release are recorded as ``lock.*``/``rlock.*``
records of a primitive with the given name (default: the ``wrap()`` call site).
"""

from __future__ import annotations

import _thread
from typing import Any

import wrapt

from ._core import stream as _stream
from ._core.records import (
    LOCK_ACQUIRE, LOCK_RELEASE, RLOCK_ACQUIRE, RLOCK_RELEASE, caller_site,
)
from .primitives._base import (
    acquire_details, bind_append, current_state, make_info, now_ns, seq, validate_lock_args,
)

_append: Any = None   # bound by bind_append (the buffer's, or nothing with no sink)
bind_append(globals())
_listening = _stream.listening   # [bool]: a sink is attached

_RLOCK_TYPES = tuple(t for t in (getattr(_thread, "RLock", None),) if isinstance(t, type))


class TracedLockProxy(wrapt.ObjectProxy):
    """A recording proxy around an existing ``Lock`` or ``RLock`` object."""

    def __init__(self, wrapped: Any, name: str | None = None) -> None:
        super().__init__(wrapped)
        reentrant = hasattr(wrapped, "_is_owned")
        self._self_reentrant = reentrant
        self._self_ops = (RLOCK_ACQUIRE, RLOCK_RELEASE) if reentrant else (
            LOCK_ACQUIRE, LOCK_RELEASE)
        self._self_info = make_info("RLock" if reentrant else "Lock", name)
        self._self_acquired_ns = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        lock = self.__wrapped__
        st = current_state()
        if st.guard:
            return lock.acquire(blocking, timeout)
        if timeout != -1:
            validate_lock_args(st, blocking, timeout)
        reentered = self._self_reentrant and lock._is_owned()
        t0 = now_ns()
        site = None
        if lock.acquire(False):
            ok, blocked, t1 = True, False, t0
        elif not blocking:
            ok, blocked, t1 = False, False, t0
        else:
            site = caller_site(2) if _listening[0] else None   # (only a record's)
            st.waiting = self._self_info
            st.wait_bounded = timeout != -1
            try:
                ok = lock.acquire(True, timeout)
            finally:
                st.waiting = None
            blocked, t1 = True, now_ns()
        if ok and not reentered:
            self._self_acquired_ns = t1
        details = (acquire_details(blocking, timeout, reentrant=True) if reentered
                   else acquire_details(blocking, timeout))
        _append((seq(), self._self_ops[0], self._self_info, st, t0, t1, ok, blocked,
                            None, site, details))
        return ok

    def __enter__(self) -> bool:
        return self.acquire()

    def release(self) -> None:
        lock = self.__wrapped__
        st = current_state()
        if st.guard:
            return lock.release()
        t = now_ns()
        lock.release()
        freed = not self._self_reentrant or not lock._is_owned()
        _append((seq(), self._self_ops[1], self._self_info, st, t, t, True, False,
                            t - self._self_acquired_ns if freed else None, None, None))

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @property
    def name(self) -> str:
        return self._self_info.name

    def __repr__(self) -> str:
        return f"<tracethread.wrap({self.__wrapped__!r}) name={self._self_info.name!r}>"


def wrap(lock: Any, name: str | None = None) -> TracedLockProxy:
    """Return a recording proxy for an existing ``threading.Lock``/``RLock`` object."""
    if isinstance(lock, TracedLockProxy):
        return lock
    if not (isinstance(lock, _thread.LockType) or isinstance(lock, _RLOCK_TYPES)
            or type(lock).__name__ == "_RLock"):
        raise TypeError(
            f"tracethread.wrap() traces existing Lock and RLock objects, not "
            f"{type(lock).__name__}; construct a tracethread.{type(lock).__name__} instead "
            "(or install() before the object is created).")
    return TracedLockProxy(lock, name)
