"""Lock and RLock: the stdlib's semantics on raw ``_thread`` locks, every operation seen (a
record, or a count in the primitive's summary: _core/summaries.py).

Hot path (``with lock:`` uncontended): thread state from a thread-local, a non-blocking raw
acquire, one timestamp, one tuple appended to the record buffer. No stack capture, no
allocation beyond that tuple. The call site is captured only when a thread has to wait.
The non-blocking first attempt is only taken for ``blocking=True, timeout=-1``; any other
arguments are checked by a raw lock first, so errors are the stdlib's own; so are the errors
for a call of the wrong shape (``acquire(foo=1)``) and for ``Lock(1)``.
"""

from __future__ import annotations

import _thread
import sys
import warnings
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._core import stream as _stream
from .._core import summaries as _sum
from .._core.records import D_REENTER, PrimitiveInfo, ThreadState
from .._core.records import (
    LOCK_ACQUIRE, LOCK_RELEASE, RLOCK_ACQUIRE, RLOCK_RELEASE, caller_site,
)
from . import _base
from ._base import (
    ACQUIRE_SIGNATURE, D_FAST_ACQUIRE, D_TRY_ACQUIRE, NO_ARGS_SIGNATURE, LockStatistics,
    StdCompatMeta, acquire_args, acquire_details, bind_append, make_info, new_state,
    no_arguments, now_ns,
    seq, std_signature, thread_infos, tls, use_raw, validate_lock_args,
)
from .._core import _raw
from .._core import detect as _detect
from .._core._accel import speedups

_allocate_lock = _raw.allocate_lock
_append: Any = None   # bound by bind_append (the buffer's, or nothing with no sink)
_aggregating = _sum.aggregating   # [bool]: count uncontended operations, see recorder
_bump = _sum.bump                 # count an operation in the summary (_core/summaries.py)
_bump_hold = _sum.bump_hold        # count an uncontended hold ended
_PURE = speedups is None
_A_ACQUIRES, _A_REENTRIES, _A_INNER_RELEASES = (  # counter slots (_core/summaries.py)
    _sum.A_ACQUIRES, _sum.A_REENTRIES, _sum.A_INNER_RELEASES)


bind_append(globals())

_D_REENTER = D_REENTER
_D_VIA_CONDITION = MappingProxyType({"via": "condition.wait"})
_CONTENDED = (True,)  # release details: another thread was waiting (a contended hold)
_MINUS_ONE = -1       # acquire()'s default timeout (the same int object as C's -1)


def _default_timeout(timeout: Any) -> bool:
    """The "no timeout" of the fast paths, as the C ones judge it: the int -1 or the float
    -1.0 exactly (an int subclass, a bool or anything else goes the checked way)."""
    return timeout is _MINUS_ONE or (
        (timeout.__class__ is int or timeout.__class__ is float) and timeout == -1)


def _acquire_waiting(self: Any, raw: Any, st: Any, blocking: Any, timeout: Any, op: str,
                     via: Any) -> bool:
    """Every acquire that is not the uncontended default case, for Lock and RLock: try
    once; if that fails and the caller may block, capture the call site, register as a
    waiter (visible in ``statistics()``) and wait on the raw lock."""
    t0 = now_ns()
    bounded = timeout is not None and timeout != -1
    # acquire(timeout=0) cannot wait at all: a try-lock, no lock-order edge.
    ordering = blocking and not (bounded and timeout <= 0)
    if raw.acquire(False):
        if ordering and st.held:
            _detect.on_acquire(st, self, bounded)
        st.held.append(self)
        self._owner = st
        self._acquired_ns = t0
        _append((seq(), op, self._info, st, t0, t0, True, False, None, None,
                 via or acquire_details(blocking, timeout)))
        return True
    if not ordering:   # a try-acquire (or a timeout <= 0): a look (OUTCOME_POLICY)
        _append((seq(), op, self._info, st, t0, t0, False, False, None, None,
                 via or (D_TRY_ACQUIRE if not blocking else acquire_details(blocking, timeout))))
        return False
    site = caller_site(2)
    holder = self._owner   # who holds it as this thread starts to wait (None: released)
    waiting = self._waiting
    if waiting is None:   # made on the first wait (a Condition's RLock starts without)
        waiting = self._waiting = []
    waiting.append(st)
    st.waiting = self._info
    st.wait_since = t0
    try:
        suspect = _detect.before_block(st, self, bounded)
        if suspect is None:
            ok = raw.acquire(True, timeout)
        else:   # a wait-for cycle another thread could still break: confirm it
            ok = _detect.wait_confirming(
                st, self, suspect, lambda t: raw.acquire(True, -1 if t is None else t))
    finally:
        st.blocked_on = None
        st.waiting = None
        waiting.remove(st)
    t1 = now_ns()
    if ok:
        if st.held:
            _detect.on_acquire(st, self, bounded)
        st.held.append(self)
        st.held_sites[id(self)] = site
        self._owner = st
        self._acquired_ns = t1
    _append((seq(), op, self._info, st, t0, t1, ok, True, None, site,
             via or acquire_details(blocking, timeout, context=_stream.capture_context(),
                                    holder=None if holder is None else holder.name)))
    return ok


def _leave_held(owner: Any, prim: Any, releaser: Any) -> None:
    """Take a released lock off its owner's held list (the fast, usual case: it is the
    last one taken, by the releasing thread)."""
    if owner is None:
        return
    held = owner.held
    if held and held[-1] is prim and owner is releaser:
        held.pop()
    else:
        _detect.released_elsewhere(owner, prim, releaser)
    if owner.held_sites:
        owner.held_sites.pop(id(prim), None)


def _released(prim: Any, st: Any, t: int, acquired: int, op: str) -> None:
    """The pure-Python paths' record of a release that freed the lock: a record when
    somebody waited (a contended hold) or every operation is wanted, else the summary."""
    if prim._waiting:   # a contended hold: where it ended (its span's code.* attributes)
        _append((seq(), op, prim._info, st, t, t, True, False, t - acquired,
                 caller_site(2), (True, _stream.capture_context())))
    elif not _aggregating[0]:
        _append((seq(), op, prim._info, st, t, t, True, False, t - acquired, None, None))
    else:
        _bump_hold(prim, st, t - acquired)


class _PyLockFast:
    """The pure-Python fast paths of Lock (used when the C ones are not built).

    ``acquire`` and ``release`` take ``*args, **kwargs`` so that a call of the wrong shape
    gets the stdlib's error (``'foo' is an invalid keyword argument for acquire()``), not
    Python's; ``inspect.signature`` shows the stdlib's. ``__enter__``/``__exit__`` (the
    ``with`` statement's, given the same arguments every time) keep plain parameters and
    hold the code; ``acquire``/``release`` check the call's shape and go to them."""

    __slots__ = ("_lock", "_info", "_owner", "_acquired_ns", "_waiting", "_agg",
                 "__weakref__")
    _lock: Any   # a raw _thread lock
    _info: PrimitiveInfo
    _owner: ThreadState | None
    _acquired_ns: int
    _waiting: list[ThreadState] | None
    _agg: list | None

    if TYPE_CHECKING:   # Lock's (the C type calls it too)
        def _acquire_slow(self, st: ThreadState, blocking: Any, timeout: Any, op: str,
                          via: Any = None) -> bool: ...

    _tt_take = _sum.py_take

    def __enter__(self, blocking: Any = True, timeout: Any = -1) -> bool:
        try:
            st = tls.st
        except AttributeError:
            st = new_state()
        if st.guard:
            return self._lock.acquire(blocking, timeout)
        if blocking is True and (timeout is _MINUS_ONE or _default_timeout(timeout)) and \
                self._lock.acquire(False):
            t = now_ns()
            held = st.held
            if held:
                _detect.on_acquire(st, self, False)
            held.append(self)
            self._owner = st
            self._acquired_ns = t
            if _aggregating[0]:
                _bump(self, st, _A_ACQUIRES)
            else:
                _append((seq(), LOCK_ACQUIRE, self._info, st, t, t, True, False, None, None,
                         D_FAST_ACQUIRE))
            return True
        return self._acquire_slow(st, blocking, timeout, LOCK_ACQUIRE)

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        """Acquire the lock (recorded)."""
        if args or kwargs:
            return _PyLockFast.__enter__(self, *acquire_args(args, kwargs))
        return _PyLockFast.__enter__(self)

    acquire.__signature__ = ACQUIRE_SIGNATURE  # type: ignore[attr-defined]

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        try:
            st = tls.st
        except AttributeError:
            st = new_state()
        if st.guard:
            return self._lock.release()
        t = now_ns()
        acquired = self._acquired_ns
        owner = self._owner
        self._owner = None
        self._lock.release()
        _leave_held(owner, self, st)
        _released(self, st, t, acquired, LOCK_RELEASE)

    def release(self, *args: Any, **kwargs: Any) -> None:
        """Release the lock (recorded)."""
        if args or kwargs:
            no_arguments("Lock.release", args, kwargs)
        return _PyLockFast.__exit__(self)

    release.__signature__ = NO_ARGS_SIGNATURE  # type: ignore[attr-defined]


# threading.RLock(*args, **kwargs) warns from 3.13 on (the arguments, ignored, go in 3.15).
_RLOCK_ARGUMENTS_DEPRECATED = (
    "Passing arguments to RLock is deprecated and will be removed in 3.15"
    if sys.version_info >= (3, 13) else None)

# The C type and the pure-Python class are twins (docs/architecture.md): the type checker
# is shown the pure one, which spells out the attributes both have.
if TYPE_CHECKING:
    _LockBase = _PyLockFast
else:
    _LockBase = speedups.LockCore if speedups is not None else _PyLockFast
if speedups is not None:
    # A C method's errors name its class by ``__qualname__`` (``LockCore.release() takes
    # no arguments (1 given)``): name the class users meet, as the stdlib's messages name
    # theirs (``lock.release()``, ``RLock.release()``). Only the qualname: the types stay
    # ``_speedups.LockCore``/``RLockCore`` (their repr reads ``_speedups.Lock``).
    speedups.LockCore.__qualname__ = "Lock"
    speedups.RLockCore.__qualname__ = "RLock"


def _refuse_lock_arguments(args: tuple, kwargs: dict) -> None:
    """``Lock()`` takes nothing but ``name=``: anything else gets the error the stdlib's
    ``threading.Lock`` gives for it on this interpreter (it is given the same arguments)."""
    _raw.StdLock(*args, **{k: v for k, v in kwargs.items() if k != "name"})


def _refuse_with_kwargs(args: tuple, kwargs: Any) -> None:
    """``_refuse_lock_arguments`` as the C constructor calls it (kwargs may be None)."""
    _refuse_lock_arguments(args, kwargs or {})


class Lock(_LockBase, metaclass=StdCompatMeta):
    """A primitive lock: ``threading.Lock``, recorded. Accepts ``name=`` (default: the
    creation site ``file:line``)."""

    __slots__ = ()
    _std_twins = (_thread.LockType,)
    _tt_signature = std_signature(_raw.StdLock)

    if speedups is None or TYPE_CHECKING:
        # (with the C extension, both are LockCore's, in C: the same, 17x cheaper)
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if cls is Lock:
                if args or (kwargs and kwargs.keys() != {"name"}):
                    _refuse_lock_arguments(args, kwargs)
                if use_raw():
                    return _allocate_lock()
            return _LockBase.__new__(cls)

        def __init__(self, *, name: str | None = None) -> None:
            self._lock = _allocate_lock()
            self._info = make_info("Lock", name)
            self._owner = None
            self._acquired_ns = 0
            self._waiting = None   # a list from the first wait
            if _PURE:
                self._agg = None

    def _acquire_slow(self, st: Any, blocking: Any, timeout: Any, op: str,
                      via: Any = None) -> bool:
        # Any but a bool and the int -1 is checked by a raw lock: the stdlib's errors.
        if blocking.__class__ is not bool or timeout.__class__ is not int or timeout != -1:
            validate_lock_args(st, blocking, timeout)
        return _acquire_waiting(self, self._lock, st, blocking, timeout, op, via)

    def locked(self, *args: Any, **kwargs: Any) -> bool:
        """Whether the lock is held."""
        if args or kwargs:
            no_arguments("Lock.locked", args, kwargs)
        return self._lock.locked()

    locked.__signature__ = NO_ARGS_SIGNATURE  # type: ignore[attr-defined]

    # The legacy spellings ``_thread.lock`` still carries.
    acquire_lock = _LockBase.acquire
    release_lock = _LockBase.release
    locked_lock = locked

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._owner = None
        self._waiting = []

    def statistics(self) -> LockStatistics:
        owner = self._owner
        return LockStatistics(
            name=self._info.name, kind="Lock", locked=self._lock.locked(),
            owner=owner.info() if owner is not None and self._lock.locked() else None,
            waiting=thread_infos(self._waiting or ()))

    @property
    def name(self) -> str:
        return self._info.name

    def __repr__(self) -> str:
        state = "locked" if self._lock.locked() else "unlocked"
        return (f"<{state} {type(self).__module__}.{type(self).__qualname__} object "
                f"name={self._info.name!r} at {id(self):#x}>")

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")


class _PyRLockFast:
    """The pure-Python paths of RLock (the C ones call back into ``_acquire_py`` for
    everything but the uncontended default case: then the operation is a record, as the
    summary counters are the C ones — `_PURE` guards each use of the Python counters).

    As for ``_PyLockFast``: ``acquire``/``release`` take ``*args, **kwargs`` (the stdlib's
    errors for a call of the wrong shape) and go to ``_acquire_py`` (``__enter__``) and
    ``__exit__``, which take plain parameters and hold the code."""

    __slots__ = ("_block", "_info", "_owner", "_count", "_acquired_ns", "_waiting", "_agg",
                 "__weakref__")
    _block: Any   # a raw _thread lock
    _info: PrimitiveInfo
    _owner: ThreadState | None
    _count: int
    _acquired_ns: int
    _waiting: list[ThreadState] | None
    _agg: list | None

    if TYPE_CHECKING:   # RLock's (the C type calls it too)
        def _acquire_slow(self, st: ThreadState, blocking: Any, timeout: Any,
                          via: Any) -> bool: ...

    _tt_take = _sum.py_take

    def _acquire_py(self, blocking: Any = True, timeout: Any = -1) -> bool:
        """acquire(blocking, timeout), the arguments bound: ``__enter__``, and the C paths'
        call for anything but the uncontended default case."""
        st: ThreadState
        try:
            st = tls.st
        except AttributeError:
            st = new_state()
        # Any but a bool and the int -1 is checked by a raw lock: the stdlib's errors.
        if blocking is not True or timeout is not _MINUS_ONE:
            if (blocking.__class__ is not bool or timeout.__class__ is not int
                    or timeout != -1):
                validate_lock_args(st, blocking, timeout)
        if self._owner is st:
            self._count += 1
            if not st.guard:
                if blocking is True and _default_timeout(timeout) and _PURE and \
                        _aggregating[0]:
                    _bump(self, st, _A_REENTRIES)
                    return True
                t = now_ns()
                _append((seq(), RLOCK_ACQUIRE, self._info, st, t, t, True, False, None, None,
                         _D_REENTER if blocking is True and _default_timeout(timeout) else
                         acquire_details(blocking, timeout, reentrant=True)))
            return True
        if st.guard:
            if self._block.acquire(blocking, timeout):
                self._owner = st
                self._count = 1
                return True
            return False
        if blocking is True and (timeout is _MINUS_ONE or _default_timeout(timeout)) and \
                self._block.acquire(False):
            t = now_ns()
            held = st.held
            if held:
                _detect.on_acquire(st, self, False)
            held.append(self)
            self._owner = st
            self._count = 1
            self._acquired_ns = t
            if _PURE and _aggregating[0]:
                _bump(self, st, _A_ACQUIRES)
            else:
                _append((seq(), RLOCK_ACQUIRE, self._info, st, t, t, True, False, None, None,
                         D_FAST_ACQUIRE))
            return True
        if self._acquire_slow(st, blocking, timeout, None):
            self._count = 1
            return True
        return False

    __enter__ = _acquire_py

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        """Acquire the lock (recorded)."""
        if args or kwargs:
            return _PyRLockFast._acquire_py(self, *acquire_args(args, kwargs))
        return _PyRLockFast._acquire_py(self)

    acquire.__signature__ = ACQUIRE_SIGNATURE  # type: ignore[attr-defined]

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        st: ThreadState
        try:
            st = tls.st
        except AttributeError:
            st = new_state()
        if self._owner is not st:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count - 1
        self._count = count
        if st.guard:
            if not count:
                self._owner = None
                self._block.release()
            return
        t = now_ns()
        if count:
            if _aggregating[0]:
                _bump(self, st, _A_INNER_RELEASES)
            else:
                _append((seq(), RLOCK_RELEASE, self._info, st, t, t, True, False, None, None,
                         None))
            return
        acquired = self._acquired_ns
        self._owner = None
        self._block.release()
        _leave_held(st, self, st)
        _released(self, st, t, acquired, RLOCK_RELEASE)

    def release(self, *args: Any, **kwargs: Any) -> None:
        """Release the lock (recorded)."""
        if args or kwargs:
            no_arguments("RLock.release", args, kwargs)
        return _PyRLockFast.__exit__(self)

    release.__signature__ = NO_ARGS_SIGNATURE  # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        try:
            st = tls.st
        except AttributeError:
            st = new_state()
        return self._owner is st


if TYPE_CHECKING:
    _RLockBase = _PyRLockFast
else:
    _RLockBase = speedups.RLockCore if speedups is not None else _PyRLockFast


class RLock(_RLockBase, metaclass=StdCompatMeta):
    """A reentrant lock: ``threading.RLock``, recorded, with the private protocol
    ``Condition`` relies on (``_is_owned``, ``_release_save``, ``_acquire_restore``) and
    ``_recursion_count``/``_at_fork_reinit``."""

    __slots__ = ()
    _std_twins = tuple(t for t in (getattr(_thread, "RLock", None),
                                   getattr(__import__("threading"), "_PyRLock", None))
                       if isinstance(t, type))
    # threading.RLock is a function (*args, **kwargs): the C _thread.RLock takes and
    # ignores any arguments (the pure-Python _PyRLock takes none; the C one is the
    # RLock programs get, and the one followed).
    _tt_signature = std_signature(_raw.StdRLock)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is RLock and use_raw():
            return _raw.StdRLock()
        return _RLockBase.__new__(cls)

    def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
        if (args or kwargs) and _RLOCK_ARGUMENTS_DEPRECATED:
            warnings.warn(_RLOCK_ARGUMENTS_DEPRECATED, DeprecationWarning, stacklevel=2)
        self._block = _allocate_lock()
        self._info = make_info("RLock", name)
        self._owner = None
        self._count = 0
        self._acquired_ns = 0
        self._waiting = []
        if _PURE:
            self._agg = None

    _acquire_py = _PyRLockFast._acquire_py

    @classmethod
    def _for_condition(cls, info: PrimitiveInfo) -> "RLock":
        """The default lock of a Condition: same name and site, built without a second
        look at the caller's frames (Conditions are made per Future, per Queue…)."""
        self = _RLockBase.__new__(cls)
        self._block = _allocate_lock()
        self._info = PrimitiveInfo("RLock", info.name, info.site)
        self._waiting = None   # a list from the first wait: one object less per Future
        if _PURE:
            self._owner = None
            self._count = 0
            self._acquired_ns = 0
            self._agg = None
        # (the C type starts with no owner, count and time 0)
        return self

    def _acquire_slow(self, st: Any, blocking: Any, timeout: Any, via: Any) -> bool:
        return _acquire_waiting(self, self._block, st, blocking, timeout, RLOCK_ACQUIRE, via)

    # -- the protocol Condition uses (and _is_owned: in C, or _PyRLockFast) ---------------
    def _recursion_count(self) -> int:
        try:
            st = tls.st
        except AttributeError:
            st = new_state()
        return self._count if self._owner is st else 0

    def _release_save_py(self) -> tuple[int, Any]:
        if self._count == 0:
            raise RuntimeError("cannot release un-acquired lock")
        st = tls.st if hasattr(tls, "st") else new_state()
        count, owner = self._count, self._owner
        t = now_ns()
        acquired = self._acquired_ns
        self._count = 0
        self._owner = None
        self._block.release()
        if not st.guard:
            _leave_held(owner, self, st)
            # As any release (and a Lock's inside Condition.wait): a record when somebody
            # waited or every operation is wanted, else counted in the summary.
            # (a C lock taken while nothing read the clock has no start: a hold of 0)
            held = t - acquired if acquired else 0
            if self._waiting or not _aggregating[0]:
                _append((seq(), RLOCK_RELEASE, self._info, st, t, t, True, False,
                         held, caller_site(2) if self._waiting else None,
                         MappingProxyType({"via": "condition.wait", "count": count})))
            else:
                _bump_hold(self, st, held)
        return count, owner

    def _acquire_restore_py(self, state: tuple[int, Any]) -> None:
        count, owner = state
        st = tls.st if hasattr(tls, "st") else new_state()
        if st.guard:
            self._block.acquire()
        elif _aggregating[0] and self._block.acquire(False):
            # Uncontended: counted, as any uncontended acquire (and a Lock's inside
            # Condition.wait) is while summaries are on.
            t = now_ns()
            if st.held:
                _detect.on_acquire(st, self, False)
            st.held.append(self)
            self._acquired_ns = t
            _bump(self, st, _A_ACQUIRES)
        else:
            self._acquire_slow(st, True, -1, _D_VIA_CONDITION)
        self._owner = owner
        self._count = count

    # With the extension, RLockCore's C methods take the common case (summaries on,
    # nobody waiting, the lock free) and call these for every other.
    if TYPE_CHECKING or _PURE:
        _release_save = _release_save_py
        _acquire_restore = _acquire_restore_py

    def _at_fork_reinit(self) -> None:
        self._block._at_fork_reinit()
        self._owner = None
        self._count = 0
        self._waiting = []

    def locked(self) -> bool:
        return self._block.locked()

    def statistics(self) -> LockStatistics:
        owner = self._owner
        return LockStatistics(
            name=self._info.name, kind="RLock", locked=self._block.locked(),
            owner=owner.info() if owner is not None else None,
            waiting=thread_infos(self._waiting or ()), count=self._count)

    @property
    def name(self) -> str:
        return self._info.name

    def __repr__(self) -> str:
        owner = self._owner
        return (f"<{'locked' if self._block.locked() else 'unlocked'} "
                f"{type(self).__module__}.{type(self).__qualname__} object "
                f"owner={owner.ident if owner is not None else 0} count={self._count} "
                f"name={self._info.name!r} at {id(self):#x}>")

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")


Lock.__module__ = RLock.__module__ = "tracethread"
if speedups is not None:
    # Condition's C enter/exit call their paths; its default RLock is made in C.
    speedups.set_lock_classes(Lock, RLock, _allocate_lock, _raw.THREADING_FILE,
                              _refuse_with_kwargs)
_ = _base  # the module keeps its bindings for the statistics types
