"""What the core records: the primitive, the thread, the site, and the record itself.

Hot paths append a plain tuple (``RAW_FIELDS`` order) to the buffer; a ``Record`` is built
from it only when the buffer is drained, off the hot path.
"""

from __future__ import annotations

import itertools
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from types import FrameType, MappingProxyType
from typing import Any, Mapping
from weakref import ref as _weakref

from ._accel import speedups as _speedups

# Operation names. One constant per operation; sinks and tests use these, never literals.
LOCK_ACQUIRE = "lock.acquire"
LOCK_RELEASE = "lock.release"
RLOCK_ACQUIRE = "rlock.acquire"
RLOCK_RELEASE = "rlock.release"
SEMAPHORE_ACQUIRE = "semaphore.acquire"
SEMAPHORE_RELEASE = "semaphore.release"
CONDITION_WAIT = "condition.wait"
CONDITION_NOTIFY = "condition.notify"
CONDITION_NOTIFY_ALL = "condition.notify_all"
EVENT_SET = "event.set"
EVENT_CLEAR = "event.clear"
EVENT_WAIT = "event.wait"
BARRIER_WAIT = "barrier.wait"
BARRIER_RESET = "barrier.reset"
BARRIER_ABORT = "barrier.abort"
THREAD_START = "thread.start"
THREAD_RUN_BEGIN = "thread.run.begin"
THREAD_RUN_END = "thread.run.end"
THREAD_JOIN = "thread.join"
FINDING = "finding"
# Which outcome of an operation is a look, ``blocked`` or a timeout: one rule for every
# primitive (Lock, RLock, Semaphore, Condition, Event, Barrier, Thread.join), stated here
# and in docs/records.md (tests/test_records_policy.py holds the code and the doc to it).
OUTCOME_POLICY = MappingProxyType({
    "look": "A call that cannot wait (`blocking=False`, or a timeout of 0 or less) is a "
            "look: never `blocked`, never a timeout.",
    "blocked": "`blocked` means the thread waited: a call that could wait and found what "
               "it wanted at once is not `blocked`, except `Condition.wait` and "
               "`Barrier.wait`, which always wait for another thread.",
    "timeout": "A timeout (`timed_out`) is a bounded wait that was `blocked` and ended "
               "without what it waited for.",
})


def may_wait(timeout: Any) -> bool:
    """``OUTCOME_POLICY["look"]`` for a ``timeout`` argument (None: no timeout): can a call
    with it wait at all? (Only for timeouts already accepted: a number or None.)"""
    return timeout is None or timeout > 0


# Not one operation but many: the operations that neither waited nor woke a thread, of the
# primitives of one kind and name since the previous summary, counted instead of recorded
# one by one (only for sinks that accept summaries; docs/records.md, "Summaries").
SUMMARY = "summary"

ALL_OPS = (
    LOCK_ACQUIRE, LOCK_RELEASE, RLOCK_ACQUIRE, RLOCK_RELEASE, SEMAPHORE_ACQUIRE,
    SEMAPHORE_RELEASE, CONDITION_WAIT, CONDITION_NOTIFY, CONDITION_NOTIFY_ALL, EVENT_SET,
    EVENT_CLEAR, EVENT_WAIT, BARRIER_WAIT, BARRIER_RESET, BARRIER_ABORT, THREAD_START,
    THREAD_RUN_BEGIN, THREAD_RUN_END, THREAD_JOIN, FINDING, SUMMARY,
)

# Histogram boundaries of durations, in seconds, 1 µs … 10 s: the buckets of summaries'
# hold times and of the OpenTelemetry histograms (the SDK's defaults are for milliseconds).
DURATION_BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                    2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EMPTY: Mapping[str, Any] = MappingProxyType({})
# Details shared by many records: read-only and allocated once.
D_FAST_ACQUIRE: Mapping[str, Any] = MappingProxyType({"blocking": True, "timeout": None})
D_TRY_ACQUIRE: Mapping[str, Any] = MappingProxyType({"blocking": False, "timeout": None})
D_REENTER: Mapping[str, Any] = MappingProxyType(
    {"blocking": True, "timeout": None, "reentrant": True})


@dataclass(frozen=True, slots=True)
class Site:
    """A place in the source: where a primitive was created or an operation blocked.

    ``path`` (the file's absolute path when the site was first seen) and ``qualname``
    (the code's qualified name where Python has one, else its name) are for fingerprints
    (docs/report.md, "Fingerprints"); they take no part in equality, hash or repr."""

    file: str
    line: int
    function: str
    path: str | None = field(default=None, compare=False, repr=False)
    qualname: str | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


_primitive_ids = itertools.count(1)
_thread_uids = itertools.count(1)


_PINFO_FIELDS = ("kind", "name", "site")


def _pinfo_args(args: tuple, kwargs: dict) -> tuple:
    """``(kind, name, site)`` bound as the C type's ``PyArg_ParseTupleAndKeywords`` binds
    them, with its errors."""
    if len(args) + len(kwargs) > 3:
        raise TypeError(f"PrimitiveInfo() takes at most 3 arguments "
                        f"({len(args) + len(kwargs)} given)")
    values = []
    for i, field_name in enumerate(_PINFO_FIELDS):
        if i < len(args):
            values.append(args[i])
        elif field_name in kwargs:
            values.append(kwargs[field_name])
        else:
            raise TypeError(f"PrimitiveInfo() missing required argument '{field_name}' "
                            f"(pos {i + 1})")
    for key in kwargs:
        if key not in _PINFO_FIELDS:
            raise TypeError(f"'{key}' is an invalid keyword argument for PrimitiveInfo()")
        if _PINFO_FIELDS.index(key) < len(args):
            raise TypeError(f"argument for PrimitiveInfo() given by name ('{key}') and "
                            f"position ({_PINFO_FIELDS.index(key) + 1})")
    return tuple(values)


def _check_str(value: Any, what: str) -> Any:
    if value.__class__ is not str:
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _check_site(site: Any) -> Any:
    """A Site of (str, int or None, str), or None: a PrimitiveInfo can never be in a
    reference cycle (the C type is not tracked by the collector)."""
    if site is None:
        return site
    if site.__class__ is not Site:
        raise TypeError(f"site must be a Site or None, not {type(site).__name__}")
    if site.file.__class__ is not str:
        raise TypeError("Site.file must be a str")
    if not (site.line.__class__ is int or site.line is None):
        raise TypeError("Site.line must be an int or None")
    if site.function.__class__ is not str:
        raise TypeError("Site.function must be a str")
    return site


class PrimitiveInfo:
    """Identity of one primitive. Its ``id`` comes from a counter and is never reused
    (``id()`` of a dead object is). Records hold this, not the primitive, so a primitive is
    garbage-collected normally while its records wait in the buffer.

    With the C extension this is ``_speedups.PrimitiveInfo``, the same in C and not a
    garbage-collected type (kind and name must be ``str``, site a ``Site`` of strs and an
    int, or None, so it can never be in a cycle; copies and pickles keep the id): two
    are made per ``Future``, and a Python object would add
    two to the collector's allocation count, which decides how often it runs."""

    __slots__ = ("_id", "_kind", "_name", "_site", "__weakref__")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kind, name, site = _pinfo_args(args, kwargs)
        _check_str(kind, "kind")
        _check_str(name, "name")
        _check_site(site)
        self._id = next(_primitive_ids)
        self._kind = kind
        self._name = name
        self._site = site

    # The C type's fields: checked on assignment, never deleted (tests/test_twins.py).
    def _get_kind(self) -> str:
        return self._kind

    def _set_kind(self, value: str) -> None:
        self._kind = _check_str(value, "kind")

    def _get_name(self) -> str:
        return self._name

    def _set_name(self, value: str) -> None:
        self._name = _check_str(value, "name")

    def _get_site(self) -> Site | None:
        return self._site

    def _set_site(self, value: Site | None) -> None:
        self._site = _check_site(value)

    def _no_delete(what: str) -> Any:  # type: ignore[misc]
        def delete(self: Any) -> None:
            raise AttributeError(f"cannot delete {what}")
        return delete

    def _read_only(self: Any, value: Any = None) -> None:
        raise AttributeError("attribute 'id' of 'tracethread.PrimitiveInfo' objects is not "
                             "writable")

    id = property(lambda self: self._id, _read_only, _read_only, "never reused")
    kind = property(_get_kind, _set_kind, _no_delete("kind"), "Lock, RLock, Condition…")
    name = property(_get_name, _set_name, _no_delete("name"))
    site = property(_get_site, _set_site, _no_delete("site"))
    del _no_delete, _read_only

    def __getstate__(self) -> tuple:
        return (self._id, self._kind, self._name, self._site)

    def __setstate__(self, state: tuple) -> None:
        self._id, self._kind, self._name, self._site = state

    def __repr__(self) -> str:
        return f"PrimitiveInfo(id={self.id}, kind={self.kind!r}, name={self.name!r})"


if _speedups is not None:
    _speedups.set_site_type(Site)
    PrimitiveInfo = _speedups.PrimitiveInfo  # type: ignore[misc,assignment]  # noqa: F811


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """The thread an operation ran in."""

    ident: int
    native_id: int
    name: str


class ThreadState:
    """Per-thread state of the core, reached through a thread-local (so it dies with its
    thread and a reused ident never inherits it)."""

    __slots__ = ("uid", "ident", "native_id", "name", "guard", "waiting", "probe", "_info", "held",
                 "held_sites", "blocked_on", "wait_since", "wait_bounded", "internal",
                 "__weakref__")

    def __init__(self, ident: int, native_id: int, name: str) -> None:
        self.uid = next(_thread_uids)  # unique for the process's life (idents are reused)
        self.ident = ident
        self.native_id = native_id
        self.name = name
        self.guard = False  # True while this thread runs tracer code (sinks, exporters)
        self.waiting: PrimitiveInfo | None = None  # what it is blocked on, if anything
        self.probe: Any = None  # a raw lock only this thread touches (argument checks)
        self._info: ThreadInfo | None = None
        self.held: list = []  # primitives this thread holds, in acquisition order
        self.held_sites: dict = {}  # id(primitive) -> Site where it was acquired after waiting
        self.blocked_on: Any = None  # the primitive/thread it is blocked on (no timeout)
        self.wait_since = 0  # monotonic ns when the current wait began
        self.wait_bounded = False  # the current wait has a timeout (it ends by itself)
        self.internal = False  # one of the tracer's own threads (drainer, watchdog, SDK)

    def info(self) -> ThreadInfo:
        info = self._info
        if info is None or info.name != self.name:
            info = self._info = ThreadInfo(self.ident, self.native_id, self.name)
        return info


from operator import itemgetter as _item  # noqa: E402 - C-level field getters


class Record(tuple):
    """One operation on one primitive (an immutable tuple with named fields).

    ``start_ns``/``end_ns`` are ``time.monotonic_ns()`` values: when the operation was
    requested and when it returned (equal for operations that never wait). ``ok`` is the
    operation's outcome (acquired, notified or set before the timeout, thread finished,
    barrier passed); ``blocked`` says whether the thread had to wait; ``site`` is the call
    site, captured only for operations that blocked. ``held_ns`` is set on releases: how
    long the lock was held. ``details`` holds the few operation-specific values documented
    in ``docs/records.md``.

    A tuple rather than a dataclass: sinks receive many of these, and building one is the
    drain's main cost (a frozen dataclass sets eleven attributes one by one).
    """

    __slots__ = ()
    _fields = ("seq", "op", "primitive", "thread", "start_ns", "end_ns", "ok", "blocked",
               "held_ns", "site", "details")

    def __new__(cls, seq: int, op: str, primitive: PrimitiveInfo, thread: ThreadInfo,
                start_ns: int, end_ns: int, ok: bool | None, blocked: bool,
                held_ns: int | None, site: Site | None,
                details: Mapping[str, Any] = EMPTY) -> "Record":
        return tuple.__new__(cls, (seq, op, primitive, thread, start_ns, end_ns, ok, blocked,
                                   held_ns, site, details))

    seq = property(_item(0), doc="global sequence number")
    op = property(_item(1), doc="operation name")
    primitive = property(_item(2), doc="PrimitiveInfo")
    thread = property(_item(3), doc="ThreadInfo")
    start_ns = property(_item(4))
    end_ns = property(_item(5))
    ok = property(_item(6))
    blocked = property(_item(7))
    held_ns = property(_item(8))
    site = property(_item(9))
    details = property(_item(10))

    @property
    def duration_ns(self) -> int:
        return self[5] - self[4]

    @property
    def timed_out(self) -> bool:
        """A bounded wait that ended without getting what it waited for."""
        return self[6] is False and self[7] and self[10].get("timeout") is not None

    def __repr__(self) -> str:
        return ("Record(" + ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self)) + ")")

    def __reduce__(self) -> Any:
        return (Record, tuple(self))


# Hot paths may give details as a plain tuple in this order (cheaper than a mapping);
# it becomes a read-only mapping when the record is materialized, off the hot path.
DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    SEMAPHORE_ACQUIRE: ("blocking", "timeout", "context"),
    SEMAPHORE_RELEASE: ("n",),
    CONDITION_WAIT: ("timeout", "reacquired_ns", "context"),
    CONDITION_NOTIFY: ("n", "woken"),
    CONDITION_NOTIFY_ALL: ("n", "woken"),
    EVENT_SET: ("woken",),
    EVENT_WAIT: ("timeout", "context"),
    BARRIER_WAIT: ("index", "parties", "broken", "timeout", "context"),
    BARRIER_RESET: ("parties",),
    BARRIER_ABORT: ("parties",),
    THREAD_START: ("daemon",),
    THREAD_RUN_BEGIN: ("context",),
    THREAD_RUN_END: ("exception",),
    THREAD_JOIN: ("timeout", "context"),
    LOCK_RELEASE: ("contended", "context"),
    RLOCK_RELEASE: ("contended", "context"),
    FINDING: ("finding",),
}


_OPTIONAL = {"context", "contended"}
# Per operation, its detail keys that are left out when None.
_OPTIONAL_OF = {op: tuple(k for k in keys if k in _OPTIONAL) for op, keys in DETAIL_KEYS.items()}


_new_tuple = tuple.__new__


def materialize(raw: tuple) -> Record:
    seq, op, info, st, t0, t1, ok, blocked, held, site, details = raw
    if details is None:
        details = EMPTY
    elif type(details) is tuple:
        # An absent OTel context or release flag is left out, not shown as None. (A dict
        # of the pairs, then the absent ones taken out: a comprehension per record was
        # the larger part of this function.)
        d = dict(zip(DETAIL_KEYS[op], details))
        for k in _OPTIONAL_OF[op]:
            if d.get(k, 0) is None:
                del d[k]
        details = MappingProxyType(d)
    info_ = st._info
    if info_ is None or info_.name != st.name:
        info_ = st.info()
    return _new_tuple(Record, (seq, op, info, info_, t0, t1, ok, blocked, held, site, details))


# ---------------------------------------------------------------------------------------
# Sites

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB_DIR = sysconfig.get_paths()["stdlib"] + os.sep
_PURELIB_DIR = sysconfig.get_paths()["purelib"] + os.sep
_site_cache: dict[tuple[int, int], tuple[Site, str, Any]] = {}   # (Site, label, ref)
_SITE_CACHE_MAX = 50_000


def _short_path(path: str) -> str:
    """A path that is stable across machines and runs: relative to the working directory,
    the stdlib or site-packages when under them."""
    cwd = os.getcwd() + os.sep
    for base in (cwd, _PURELIB_DIR, _STDLIB_DIR):
        if path.startswith(base):
            return path[len(base):]
    return path


def caller_site(depth: int = 2) -> Site | None:
    """The first frame outside tracethread, starting ``depth`` frames up."""
    found = caller_site_and_label(depth + 1)
    return None if found is None else found[0]


def caller_site_and_label(depth: int = 2) -> tuple[Site, str, Any] | None:
    """``caller_site``, its ``file:line`` label and a weak reference to the frame's code
    object, cached per code location."""
    try:
        f: FrameType | None = sys._getframe(depth)
    except ValueError:
        return None
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    if f is None:
        return None
    code = f.f_code
    # The instruction (cheaper to read than the line number) of the code object, by
    # identity (a code object's hash is computed over its constants and names each time);
    # the entry refers to the code weakly (recompiled code must not be kept alive), and an
    # id reused by new code after the old is gone finds a dead reference: made anew.
    key = (id(code), f.f_lasti)
    found = _site_cache.get(key)
    if found is None or found[2]() is not code:
        fn = code.co_filename
        site = Site(_short_path(fn), f.f_lineno, code.co_name,
                    fn if fn[:1] == "<" or os.path.isabs(fn) else os.path.abspath(fn),
                    getattr(code, "co_qualname", code.co_name))
        if len(_site_cache) >= _SITE_CACHE_MAX:
            _site_cache.clear()
        found = _site_cache[key] = (site, f"{site.file}:{site.line}", _weakref(code))
    return found


if _speedups is not None:   # make_info: hits found in C, the rest computed here
    _speedups.set_site_cache(_PKG_DIR, _site_cache, caller_site_and_label)
