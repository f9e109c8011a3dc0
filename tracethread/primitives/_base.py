"""What every primitive shares: the metaclass that keeps stdlib ``isinstance`` checks true,
construction rules (raw objects for the tracer itself and threading's own bookkeeping),
names from creation sites, and the frozen statistics records."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._core import _raw
from .._core._accel import speedups
from .._core import recorder as _rec
from .._core import records as _records
from .._core.records import (
    PrimitiveInfo, ThreadInfo, caller_site_and_label,
)

now_ns = _rec.now_ns
seq = _rec.next_seq
record = _rec.record
tls = _rec.tls()
new_state = _rec.new_state
current_state = _rec.current_state


def bind_append(module_globals: dict[str, Any]) -> None:
    """Give a module a global ``_append`` bound to the record buffer's ``append`` (a global
    is the cheapest lookup on a hot path), re-bound if the buffer is resized."""
    module_globals["_append"] = _rec.buffer.append

    def rebind(buf: Any) -> None:
        module_globals["_append"] = buf.append

    _rec.on_buffer_change(rebind)


def _py_make_info(kind: str, name: str | None) -> PrimitiveInfo:
    """The PrimitiveInfo of a primitive being made (call it from its constructor): named
    ``name``, else after its creation site, the user's constructor call (the walk skips
    every tracethread frame), else ``<kind>``. With the C extension, ``make_info`` is the
    C twin of this (sites cached in the same place)."""
    found = caller_site_and_label(2)
    site = None if found is None else found[0]
    if name is None:
        name = f"<{kind}>" if found is None else found[1]
    elif type(name) is not str:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        name = str.__str__(name)   # a plain str (what a PrimitiveInfo holds)
    return PrimitiveInfo(kind, name, site)


make_info = speedups.make_info if speedups is not None else _py_make_info


_getframe = sys._getframe
_THREADING_FILE = _raw.THREADING_FILE


def use_raw() -> bool:
    """Should a constructor return the stdlib's own, untraced object? Yes inside tracer code
    (the guard: sinks, exporters, the OTel SDK) and when the stdlib ``threading`` module
    builds one for its own bookkeeping (``Thread._started`` and the like). Called by every
    ``__new__`` (one Condition per Future): no calls of its own on the usual path."""
    try:
        st = tls.st
    except AttributeError:
        st = new_state()
    if st.guard:
        return True
    try:   # the constructor's caller: the stdlib threading module itself?
        return _getframe(2).f_code.co_filename == _THREADING_FILE
    except ValueError:
        return False


def is_foreign(cls: type, obj: Any) -> bool:
    """``obj`` is not really an instance of ``cls`` (a stdlib object reached one of our
    methods through a name install() rebound)."""
    return cls not in type(obj).__mro__


class StdCompatMeta(type):
    """``isinstance(obj, tracethread.X)`` is also true for the stdlib's ``X``.

    After ``install()`` the name ``threading.Event`` means ``tracethread.Event``; objects the
    stdlib made before that (``threading.main_thread()``, a module-level Event) must still
    pass the ``isinstance`` checks they passed before. Only the base classes themselves
    accept their stdlib twins, never user subclasses.

    The stdlib also calls base-class ``__init__`` by its module-global name from its own
    subclasses (``Semaphore.__init__(self, value)`` in BoundedSemaphore,
    ``Thread.__init__(self)`` in _DummyThread and Timer); after install() that name is
    ours while ``self`` is a stdlib object. Those ``__init__`` methods check for such a
    foreign ``self`` and run the stdlib's own initialiser (see ``is_foreign``).
    """

    def __instancecheck__(cls, obj: Any) -> bool:
        if type.__instancecheck__(cls, obj):
            return True
        twins = cls.__dict__.get("_std_twins")
        return bool(twins) and isinstance(obj, twins)

    def __subclasscheck__(cls, sub: type) -> bool:
        if type.__subclasscheck__(cls, sub):
            return True
        twins = cls.__dict__.get("_std_twins")
        return bool(twins) and isinstance(sub, type) and issubclass(sub, twins)


D_FAST_ACQUIRE = _records.D_FAST_ACQUIRE
D_TRY_ACQUIRE = _records.D_TRY_ACQUIRE


def acquire_details(blocking: Any, timeout: Any, **extra: Any) -> MappingProxyType:
    d = {"blocking": bool(blocking),
         "timeout": None if (timeout is None or timeout == -1) else float(timeout)}
    for k, v in extra.items():
        if v is not None:
            d[k] = v
    return MappingProxyType(d)


def validate_lock_args(st: Any, blocking: Any, timeout: Any) -> None:
    """Raise exactly what ``_thread.lock.acquire(blocking, timeout)`` raises for bad
    arguments, by asking a raw lock that only this thread ever touches (so it is always
    free and the call never waits)."""
    probe = st.probe
    if probe is None:
        probe = st.probe = _raw.allocate_lock()
    if probe.acquire(blocking, timeout):
        probe.release()


@dataclass(frozen=True)
class LockStatistics:
    """State of a Lock or RLock at one moment."""

    name: str
    kind: str
    locked: bool
    owner: ThreadInfo | None
    waiting: tuple[ThreadInfo, ...]
    count: int = 0  # recursion level (RLock)

    @property
    def waiters(self) -> int:
        return len(self.waiting)


@dataclass(frozen=True)
class ConditionStatistics:
    name: str
    kind: str
    waiters: int
    lock: LockStatistics | None


@dataclass(frozen=True)
class SemaphoreStatistics:
    name: str
    kind: str
    value: int
    initial_value: int
    waiters: int


@dataclass(frozen=True)
class EventStatistics:
    name: str
    kind: str
    is_set: bool
    waiters: int


@dataclass(frozen=True)
class BarrierStatistics:
    name: str
    kind: str
    parties: int
    n_waiting: int
    broken: bool


def thread_infos(states: list) -> tuple[ThreadInfo, ...]:
    return tuple(s.info() for s in list(states))
