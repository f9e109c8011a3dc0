"""What every primitive shares: the metaclass that keeps stdlib ``isinstance`` checks true,
construction rules (raw objects for the tracer itself and threading's own bookkeeping),
names from creation sites, and the frozen statistics records."""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable

from .._core import _raw
from .._core._accel import speedups
from .._core import state as _state
from .._core import stream as _stream
from .._core import records as _records
from .._core.records import (
    PrimitiveInfo, ThreadInfo, caller_site_and_label,
)

now_ns = _stream.now_ns
seq = _stream.next_seq
record = _stream.record
tls = _state.tls()
new_state = _state.new_state
current_state = _state.current_state


def bind_append(module_globals: dict[str, Any]) -> None:
    """Give a module a global ``_append`` bound to what records are appended with
    (``stream.append_now()``: a global is the cheapest lookup on a hot path), re-bound
    when the buffer is resized and when the first sink comes or the last one goes."""
    module_globals["_append"] = _stream.append_now()

    def rebind(append: Any) -> None:
        module_globals["_append"] = append

    _stream.on_buffer_change(rebind)


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
        twins: tuple[type, ...] = cls.__dict__.get("_std_twins", ())
        return bool(twins) and isinstance(obj, twins)

    def __subclasscheck__(cls, sub: type) -> bool:
        if type.__subclasscheck__(cls, sub):
            return True
        twins: tuple[type, ...] = cls.__dict__.get("_std_twins", ())
        return bool(twins) and isinstance(sub, type) and issubclass(sub, twins)

    @property
    def __signature__(cls) -> inspect.Signature | None:
        """What ``inspect.signature(cls)`` (``help()``, IDEs) shows: the stdlib's own
        constructor signature, set as ``_tt_signature`` by each class (see
        ``std_signature``). Our ``__new__(cls, *args, **kwargs)`` (it may hand back a raw
        stdlib object) would otherwise be all inspect sees.

        A subclass gets the signature of the constructor it defines, as inspect would give
        it were our permissive ``__new__`` not there; one defining neither ``__init__`` nor
        ``__new__`` gets its base's."""
        if type(cls).__call__ is not type.__call__:
            return None   # a metaclass's own __call__: inspect's rules
        for klass in cls.__mro__:
            d = klass.__dict__
            sig = d.get("_tt_signature")
            if sig is None:
                sig = d.get("__signature__")
            if sig is not None:
                return sig if isinstance(sig, inspect.Signature) else None
            for meth in ("__new__", "__init__"):
                if meth in d:   # a subclass's own constructor
                    try:
                        sig = inspect.signature(getattr(cls, meth))
                    except (TypeError, ValueError):
                        return None
                    params = list(sig.parameters.values())
                    if params and params[0].kind in (_P.POSITIONAL_ONLY,
                                                     _P.POSITIONAL_OR_KEYWORD):
                        del params[0]   # cls / self
                    return sig.replace(parameters=params)
        return None


_P = inspect.Parameter
NAME_PARAMETER = _P("name", _P.KEYWORD_ONLY, default=None)


def std_signature(std: Any, *, name: bool = True) -> inspect.Signature:
    """The running interpreter's signature of the stdlib constructor ``std`` (so 3.10's,
    3.11's and 3.13's differences are followed), with tracethread's one extension, an
    optional keyword-only ``name=None``, added last (before a ``**kwargs``) unless
    ``name=False`` (Thread has its own ``name``, Timer none). Annotations are the
    stdlib's (none). A constructor inspect cannot read (3.10/3.11's ``threading.Lock``, the
    C function ``_thread.allocate_lock``) takes no arguments."""
    try:
        sig = inspect.signature(std)
    except (TypeError, ValueError):
        sig = inspect.Signature()
    params = list(sig.parameters.values())
    if name:
        at = len(params) - (1 if params and params[-1].kind is _P.VAR_KEYWORD else 0)
        params.insert(at, NAME_PARAMETER)
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


# The signatures of the C lock types' methods (what 3.13's ``_thread.lock`` shows; 3.10 and
# 3.11 show none): ``self`` positional-only, as for tracethread's C methods.
_SELF = _P("self", _P.POSITIONAL_ONLY)
NO_ARGS_SIGNATURE: inspect.Signature = inspect.Signature([_SELF])
ACQUIRE_SIGNATURE: inspect.Signature = inspect.Signature([
    _SELF, _P("blocking", _P.POSITIONAL_OR_KEYWORD, default=True),
    _P("timeout", _P.POSITIONAL_OR_KEYWORD, default=-1)])


def no_arguments(qualname: str, args: tuple, kwargs: dict) -> None:
    """Raise what a C method taking no arguments raises when given some (the pure-Python
    paths' ``release(1)``: the stdlib's ``lock.release()`` is such a method)."""
    if kwargs:
        raise TypeError(f"{qualname}() takes no keyword arguments")
    raise TypeError(f"{qualname}() takes no arguments ({len(args)} given)")


D_FAST_ACQUIRE = _records.D_FAST_ACQUIRE
D_TRY_ACQUIRE = _records.D_TRY_ACQUIRE


def as_timeout(timeout: Any) -> float | None:
    """A timeout as a record holds it: None or a float. Never raises: a timeout the stdlib
    took without using it (``Event.wait('x')`` on a set event, ``Barrier(1).wait('x')``)
    or refused with an error of its own must not fail, or change the error, in recording."""
    if timeout is None or timeout.__class__ is float:
        return timeout
    try:
        return float(timeout)
    except (TypeError, ValueError, OverflowError):
        return None


def acquire_details(blocking: Any, timeout: Any, **extra: Any) -> MappingProxyType:
    d = {"blocking": bool(blocking),
         "timeout": None if (timeout is None or timeout == -1) else as_timeout(timeout)}
    for k, v in extra.items():
        if v is not None:
            d[k] = v
    return MappingProxyType(d)


def validate_lock_args(st: Any, blocking: Any, timeout: Any) -> None:
    """Raise exactly what ``_thread.lock.acquire(blocking, timeout)`` raises for bad
    arguments (types, values, combinations, on this interpreter), by asking a raw lock
    that only this thread touches (so it is free and the call never waits; a fresh one if
    it is held, by a signal handler's acquire that interrupted this one)."""
    probe = st.probe
    if probe is None:
        probe = st.probe = _raw.allocate_lock()
    elif probe.locked():
        probe = _raw.allocate_lock()
    if probe.acquire(blocking, timeout):
        probe.release()


def _bind_acquire(blocking: Any = True, timeout: Any = -1) -> tuple[Any, Any]:
    return blocking, timeout


def acquire_args(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """``(blocking, timeout)`` of a pure-Python ``acquire(*args, **kwargs)`` call, or the
    stdlib's own error for a call of the wrong shape (too many arguments, an unknown or
    repeated keyword): the raw lock's ``acquire``, given the same arguments, raises it."""
    try:
        return _bind_acquire(*args, **kwargs)
    except TypeError:
        pass
    probe = _raw.allocate_lock()
    probe.acquire(*args, **kwargs)   # raises: the same shape _bind_acquire refused
    raise TypeError("acquire() takes at most 2 arguments")   # (not reached)


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


def thread_infos(states: Iterable[Any]) -> tuple[ThreadInfo, ...]:
    return tuple(s.info() for s in list(states))
