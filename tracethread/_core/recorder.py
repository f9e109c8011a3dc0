"""The record stream: a bounded buffer filled on the hot path, drained to sinks off it.

Design
------
* Hot paths append one plain tuple per operation to ``buffer`` (a ``deque`` with a
  ``maxlen``: ``append`` is atomic under the GIL and never blocks). Each tuple starts with
  a global sequence number from ``itertools.count`` (atomic in C), so records have a total
  order across threads and a drain can tell exactly how many were overwritten before it got
  to them: the gaps in the sequence are the drops, counted in ``stats()['dropped']``.
* Draining (``flush()``, the background drainer thread while sinks exist, and ``atexit``)
  turns tuples into ``Record`` objects and hands them to the sinks in batches. Draining is
  serialised by a raw lock and runs with the draining thread's ``guard`` set, so whatever a
  sink does with locks (the OTel SDK takes many) is neither recorded nor able to recurse.
* A sink that raises is reported once on stderr and its later errors are only counted:
  the tracer must never break the program it watches.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import sys
import time
from bisect import bisect_left as _bisect_left
from types import MappingProxyType
from typing import Any, Protocol

from . import _raw
from . import detect as _detect
from . import watchdog as _watchdog
from ._accel import speedups
from . import records as _r
from .records import Record, ThreadState, materialize

DEFAULT_BUFFER_SIZE = 65_536
DRAIN_INTERVAL_S = 0.05
DRAIN_CHUNK = 256   # records handed to the sinks at a time
DEFAULT_EXIT_TIMEOUT = 5.0

buffer: collections.deque = collections.deque(maxlen=DEFAULT_BUFFER_SIZE)
# One counter for every record; the C fast paths (if built) own it.
next_seq = speedups.next_seq if speedups is not None else itertools.count(1).__next__

_tls = _raw.local()
_drain_lock = _raw.allocate_lock()
_sinks: list[Any] = []
_delivered = 0          # highest sequence number delivered (or skipped as dropped)
_gap = 0                # first missing number seen by the previous drain
_pending: list = []     # records held back behind a gap
_counters = {"records": 0, "dropped": 0, "sink_errors": 0, "internal_errors": 0,
             "export_dropped": 0}
_failed_sinks: set[int] = set()
_drainer_wake = _raw.allocate_lock()
_drainer_running = False
_atexit_registered = False
_deadline = 0.0         # monotonic time after which a drain stops delivering (exit)
_late = [0]             # records a drain stopped short of, past the deadline


class Sink(Protocol):
    """Receives records in order, in batches, on a thread where nothing is recorded."""

    def handle(self, records: list[Record]) -> None: ...


# ---------------------------------------------------------------------------------------
# Thread state

def new_state() -> ThreadState:
    """Create this thread's state on its first operation."""
    ident = _raw.get_ident()
    t = _raw.std_active.get(ident)
    name = t.name if t is not None else f"thread-{ident}"
    st = ThreadState(ident, _raw.get_native_id(), name)
    _tls.st = st
    _watchdog.register(st)
    return st


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


# ---------------------------------------------------------------------------------------
# Sinks and draining

def add_sink(sink: Sink) -> None:
    """Attach a sink. It receives the records of operations from now on."""
    global _atexit_registered, _delivered
    with _drain_lock:
        # Records made before the sink existed are not for it.
        _drain_locked(force=True)
        if not _sinks:
            # Numbers used while nobody listened are not losses: start counting from here
            # (this number itself is never given to a record).
            _pending.clear()
            _delivered = next_seq()
        _sinks.append(sink)
        _update_aggregation()
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_flush_at_exit)
    _ensure_drainer()


def remove_sink(sink: Sink) -> None:
    """Detach a sink after delivering it everything recorded so far."""
    with _drain_lock:
        _drain_locked(force=True)
        try:
            _sinks.remove(sink)
        except ValueError:
            pass
        _update_aggregation()


def sinks() -> tuple:
    return tuple(_sinks)


def exit_timeout() -> float:
    """Seconds the final drain may take (``TRACETHREAD_EXIT_TIMEOUT``, default 5)."""
    try:
        value = float(os.environ.get("TRACETHREAD_EXIT_TIMEOUT", "") or DEFAULT_EXIT_TIMEOUT)
    except ValueError:
        return DEFAULT_EXIT_TIMEOUT
    return value if value >= 0 else DEFAULT_EXIT_TIMEOUT   # (NaN compares False: default)


def flush(timeout: float | None = None) -> None:
    """Deliver every buffered record to the sinks now. With ``timeout`` (seconds), stop
    delivering when it has passed: what is left is counted as dropped and said once on
    stderr (a slow sink must not hold the program's exit)."""
    global _deadline
    if timeout is not None:
        _deadline = time.monotonic() + timeout
        # The drainer may be mid-drain: past the deadline it stops after the sink call it
        # is in (one batch); a sink call that never returns is waited for a second more.
        if not _drain_lock.acquire(True, timeout + 1.0):
            _say_undelivered(len(buffer) + len(_pending) + _late[0], timeout)
            _late[0] = 0
            return
        _drain_lock.release()
    try:
        with _drain_lock:
            _drain_locked()
        if _pending:
            time.sleep(0.001)  # let a record whose number was just taken land
            with _drain_lock:
                _drain_locked(force=True)
    finally:
        if timeout is not None:
            _deadline = 0.0
            if _late[0]:
                _say_undelivered(_late[0], timeout)
                _late[0] = 0


def _flush_at_exit() -> None:
    flush(exit_timeout())


def _say_undelivered(n: int, timeout: float) -> None:
    try:
        sys.stderr.write(f"tracethread: {n} records not delivered to the sinks within the exit "
                         f"timeout ({timeout:g} s, TRACETHREAD_EXIT_TIMEOUT): counted as "
                         "dropped\n")
    except Exception:  # noqa: BLE001 - stderr may be closed at exit
        pass


def _drain_locked(force: bool = False) -> None:
    """Deliver buffered records to the sinks in sequence order.

    A sequence number is taken a moment before its record is appended, so a drain can find
    a gap that another thread is about to fill. Records after a gap are held back until
    the next drain; a gap still open then was overwritten in the ring buffer: counted as
    dropped, and delivery moves past it. Sinks thus see every record in order, once."""
    global _delivered, _gap
    popleft = buffer.popleft
    raws = _pending[:]
    _pending.clear()
    while True:
        try:
            raws.append(popleft())
        except IndexError:
            break
    if not raws and not dirty:
        return
    raws.sort(key=_first)
    _counters["records"] += len(raws)
    if not _sinks:  # nobody to deliver to: only keep the numbering in step
        if raws:
            _delivered = max(_delivered, raws[-1][0])
        _discard_summaries()
        return
    out = []
    for i, raw in enumerate(raws):
        n = raw[0]
        if n <= _delivered:
            continue   # landed after a drain counted it dropped: dropped it stays
        if n > _delivered + 1:
            first_missing = _delivered + 1
            if not force and _gap != first_missing:
                _gap = first_missing  # maybe still in flight: wait for the next drain
                _pending.extend(raws[i:])
                break
            _counters["dropped"] += n - first_missing
        _delivered = n
        out.append(raw)
    if not out and not dirty:
        return
    st = current_state()
    prev = st.guard
    st.guard = True
    try:
        summaries = _take_summaries() if dirty else []
        n = len(out)
        for i in range(0, max(n, 1), DRAIN_CHUNK):
            if _deadline and time.monotonic() > _deadline:
                _counters["dropped"] += n - i   # the exit will not wait for these
                _late[0] += n - i
                break
            records = [materialize(r) for r in out[i:i + DRAIN_CHUNK]]
            last = i + DRAIN_CHUNK >= n
            for sink in tuple(_sinks):
                batch = records
                if last and summaries and getattr(sink, "accepts_summaries", False):
                    batch = records + summaries
                if not batch:
                    continue
                try:
                    sink.handle(batch)
                except BaseException as exc:  # noqa: BLE001 - even SystemExit: a sink
                    _sink_failed(sink, exc)   # must never end the drainer or the program
            if not last:
                # Let the program's threads have the GIL between chunks: a thread woken
                # by a release must not wait out a whole drain (the switch interval).
                time.sleep(0)
    finally:
        st.guard = prev


def _sink_failed(sink: Sink, exc: BaseException) -> None:
    _counters["sink_errors"] += 1
    if os.environ.get("TRACETHREAD_DEBUG_SINKS", "").strip().lower() in ("1", "true", "yes"):
        try:
            import traceback
            traceback.print_exception(exc)
        except Exception:  # noqa: BLE001 - stderr may be gone at shutdown
            pass
    key = id(sink)
    if key in _failed_sinks:
        return
    _failed_sinks.add(key)
    try:
        sys.stderr.write(
            f"tracethread: sink {type(sink).__name__} failed and its records are being "
            f"skipped ({type(exc).__name__}: {exc}); further errors are only counted.\n")
    except Exception:  # noqa: BLE001 - stderr may be closed at exit
        pass


def _first(raw: tuple) -> int:
    return raw[0]


# Set by the OpenTelemetry exporter: the thread's current OTel context is captured for
# operations that blocked (their spans' parent), and carried into threads at start().
otel_hooks: Any = None  # (get_current, attach, detach) or None


def capture_context() -> Any:
    hooks = otel_hooks
    return hooks[0]() if hooks is not None else None


def stats() -> dict[str, int]:
    """Counters of the record stream: records delivered, dropped (buffer overflow before a
    drain reached them), sink errors, the tracer's own errors that were contained, and
    export_dropped (spans an exporter's bounded queue dropped after the drain, as far as a
    sink can see it: ``count_export_dropped``)."""
    return dict(_counters)


def count_export_dropped(n: int = 1) -> None:
    """A sink saw ``n`` spans (or other items) dropped by its exporter's bounded queue."""
    _counters["export_dropped"] += n


_reported_internal: set = set()


def internal_error(where: str, exc: BaseException) -> None:
    """The tracer failed inside the program's call (detection, bookkeeping): count it and
    say so once per place on stderr; the program's operation goes on untouched."""
    _counters["internal_errors"] += 1
    debug = os.environ.get("TRACETHREAD_DEBUG_SINKS", "").strip().lower() in (
        "1", "true", "yes")
    if where in _reported_internal and not debug:
        return
    _reported_internal.add(where)
    try:
        import traceback
        sys.stderr.write(f"tracethread: internal error in {where}, contained; the program "
                         "goes on (further errors here are only counted):\n"
                         + "".join(traceback.format_exception(exc)))
    except Exception:  # noqa: BLE001 - stderr may be closed at exit
        pass


def set_buffer_size(size: int) -> None:
    """Bound the buffer to ``size`` records (what overflows is dropped and counted)."""
    global buffer
    if size < 1:
        raise ValueError("buffer size must be at least 1")
    with _drain_lock:
        _drain_locked(force=True)
        old = buffer
        buffer = collections.deque(maxlen=size)
        _publish_buffer(buffer)
        old.clear()


_buffer_listeners: list[Any] = []


def on_buffer_change(callback) -> None:
    """Primitives bind ``buffer.append`` at import for speed; they re-bind through this."""
    _buffer_listeners.append(callback)


def _publish_buffer(buf: collections.deque) -> None:
    for cb in _buffer_listeners:
        cb(buf)


# ---------------------------------------------------------------------------------------
# Summaries
#
# While every sink accepts them (``accepts_summaries = True``: the report's statistics, the
# OpenTelemetry metrics), the operations that neither waited nor ended a wait are not
# recorded one by one: the uncontended Lock/RLock operations (a fast-path acquire or
# re-entry, a release nobody waited for), Condition notifies that woke nobody, Semaphore
# acquires that did not wait and releases that woke nobody, and Event set (woke nobody),
# clear and wait (did not block). The operation adds to counters kept on the primitive (how
# many of each, hold-time total/min/max and histogram buckets, which threads) and lists it
# in ``dirty`` once. Each drain takes the counters and delivers one SUMMARY record per
# (kind, name).
# Everything else (acquires and waits that waited, try-acquires of a Lock/RLock, contended
# releases, notifies and sets that woke a thread) is still one record per operation, and
# with any other sink attached (tests' capture(), the trace file, user sinks) every
# operation is. This keeps a busy lock's cost to a few counter updates: no tuple per
# operation, nothing for the drainer to materialize, no SDK call per hold.
#
# Counters, in the order ``_tt_take()`` returns them (the C locks keep theirs in C):
A_ACQUIRES, A_REENTRIES, A_RELEASES, A_INNER_RELEASES = 0, 1, 2, 3
A_HOLD_SUM, A_HOLD_MIN, A_HOLD_MAX, A_BUCKETS, A_BUCKET_SUMS, A_THREADS = 4, 5, 6, 7, 8, 9
A_NOTIFIES, A_FAILURES, A_SEM_RELEASES, A_SETS, A_CLEARS, A_POLLS = 10, 11, 12, 13, 14, 15
if speedups is not None and speedups.A_NOTIFIES != A_NOTIFIES:  # the C notify counts there
    raise ImportError("tracethread._speedups is out of date: rebuild it")
_N_TAKEN = 16   # the counters list has one more slot: the last thread seen (A_LAST)
A_LAST = 16
# Plain operation counts (summed across a summary's instances) and their detail keys.
_COUNTS = ((A_ACQUIRES, "acquisitions"), (A_REENTRIES, "reentries"),
           (A_INNER_RELEASES, "inner_releases"), (A_NOTIFIES, "notifies"),
           (A_FAILURES, "failures"), (A_SEM_RELEASES, "semaphore_releases"),
           (A_SETS, "event_sets"), (A_CLEARS, "event_clears"), (A_POLLS, "event_waits"))
# Every detail key of a summary that counts operations (the plain counts and the releases).
SUMMARY_OPERATION_KEYS = tuple(key for _, key in _COUNTS) + ("releases",)

aggregating = [False]   # read by the primitives' Python paths
dirty: list = []        # primitives with counters to take (the C paths append here too)
_NBUCKETS = len(_r.DURATION_BUCKETS) + 1
_ZEROS = (0,) * _NBUCKETS
_BOUNDS = _r.DURATION_BUCKETS
_last_summary_ns = 0


def _update_aggregation() -> None:
    """Aggregate exactly while there are sinks and all of them accept summaries (called
    with the drain lock held, after a forced drain)."""
    on = bool(_sinks) and all(getattr(s, "accepts_summaries", False) for s in _sinks)
    if on != aggregating[0]:
        aggregating[0] = on
        if speedups is not None:
            speedups.set_aggregation(on, dirty, _BOUNDS)


def _new_counters() -> list:
    # Bucket lists: None where the primitive has no holds (C bump); threads: None until a
    # second thread counts (A_LAST is the one thread until then).
    return [0, 0, 0, 0, 0, 0, 0, [0] * _NBUCKETS, [0] * _NBUCKETS, None, 0, 0, 0, 0, 0, 0,
            None]


# Without the C extension, counting is Python code, and the drainer's take (which swaps
# ``prim._agg`` for None) must not come between reading the counters list and adding to
# it, or the count goes to counters already taken. From Python 3.11 the interpreter
# switches threads only at calls, function entries and backward jumps: there,
# ``py_count``/``py_count_hold`` read the list and add to it with none of those in between
# when the list is there and this thread counted last (the usual case: no lock);
# otherwise (first count since the take, another thread, or Python 3.10, which can switch
# between any two statements) they count holding ``agg_lock``, as the take swaps holding
# it. Reentrant: a signal handler may count while the thread it interrupted is counting.
agg_lock = _raw.StdRLock()
_LOCK_FREE = sys.version_info >= (3, 11)


def py_touch(prim: Any, st: ThreadState) -> list:
    """The primitive's counters (created and listed in ``dirty`` on first use), with ``st``
    noted among its threads. Call it, and add to the counters, holding ``agg_lock``."""
    a = prim._agg
    if a is None:
        a = prim._agg = _new_counters()
        dirty.append(prim)
    last = a[A_LAST]
    if last is not st:
        if last is not None:
            if a[A_THREADS] is None:
                a[A_THREADS] = {last}
            a[A_THREADS].add(st)
        a[A_LAST] = st
    return a


def py_count(prim: Any, st: ThreadState, index: int) -> None:
    """Count one operation of ``prim`` by ``st`` (the pure-Python paths' ``bump``)."""
    a = prim._agg
    if _LOCK_FREE and a is not None and a[A_LAST] is st:
        a[index] += 1   # no call since the read: no take in between
        return
    with agg_lock:
        py_touch(prim, st)[index] += 1


def py_count_hold(prim: Any, st: ThreadState, held_ns: int) -> None:
    """Count an uncontended hold of ``held_ns`` ended (a release); the bucket is the
    OpenTelemetry SDK's (bisect_left)."""
    i = _bisect_left(_BOUNDS, held_ns / 1e9)   # the one call, before the read
    a = prim._agg
    locked = not _LOCK_FREE or a is None or a[A_LAST] is not st
    if locked:
        agg_lock.acquire()
        a = py_touch(prim, st)
    # No call from the read (or the lock) to here: integer arithmetic cannot raise.
    a[A_RELEASES] += 1
    a[A_HOLD_SUM] += held_ns
    if a[A_RELEASES] == 1 or held_ns < a[A_HOLD_MIN]:
        a[A_HOLD_MIN] = held_ns
    if held_ns > a[A_HOLD_MAX]:
        a[A_HOLD_MAX] = held_ns
    a[A_BUCKETS][i] += 1
    a[A_BUCKET_SUMS][i] += held_ns
    if locked:
        agg_lock.release()


# bump(prim, st, index): count one operation of `prim` by `st` in its summary.
bump = speedups.bump if speedups is not None else py_count


def py_take(prim: Any) -> tuple | None:
    """``_tt_take`` of the Python-level primitives: the counters since the last take (the
    layout above, as the C locks return theirs), and start new ones."""
    with agg_lock:
        a = prim._agg
        prim._agg = None
    if a is None:
        return None
    return (a[0], a[1], a[2], a[3], a[4], a[5] if a[2] else 0, a[6],
            _ZEROS if a[7] is None else tuple(a[7]), _ZEROS if a[8] is None else tuple(a[8]),
            (a[A_LAST],) if a[A_THREADS] is None else tuple(a[A_THREADS]),
            *a[A_NOTIFIES:_N_TAKEN])


def _py_take_summaries(prims: list) -> list[tuple]:
    """``speedups.take_summaries`` in Python: [(info of the first, [ids], counts)] per
    (kind, name), counts in the ``_tt_take`` layout."""
    groups: dict[tuple, list] = {}
    for prim in prims:
        t = prim._tt_take()
        if t is None:
            continue
        info = prim._info
        key = (info.kind, info.name)
        g = groups.get(key)
        if g is None:
            groups[key] = [info, [info.id], list(t), list(t[A_BUCKETS]),
                           list(t[A_BUCKET_SUMS]), set(t[A_THREADS])]
            continue
        g[1].append(info.id)
        c = g[2]
        for i, _ in _COUNTS:
            c[i] += t[i]
        g[5].update(t[A_THREADS])
        if t[A_RELEASES]:
            if not c[A_RELEASES] or t[A_HOLD_MIN] < c[A_HOLD_MIN]:
                c[A_HOLD_MIN] = t[A_HOLD_MIN]
            c[A_RELEASES] += t[A_RELEASES]
            c[A_HOLD_SUM] += t[A_HOLD_SUM]
            if t[A_HOLD_MAX] > c[A_HOLD_MAX]:
                c[A_HOLD_MAX] = t[A_HOLD_MAX]
            buckets, sums, tsums = g[3], g[4], t[A_BUCKET_SUMS]
            for i, k in enumerate(t[A_BUCKETS]):
                if k:
                    buckets[i] += k
                    sums[i] += tsums[i]
    out = []
    for info, ids, c, buckets, sums, threads in groups.values():
        c[A_BUCKETS], c[A_BUCKET_SUMS], c[A_THREADS] = buckets, sums, tuple(threads)
        out.append((info, ids, c))
    return out


_group_summaries = (speedups.take_summaries if speedups is not None else _py_take_summaries)


def _take_summaries() -> list[Record]:
    """One SUMMARY record per (kind, name) — primitives made at one site, like the
    Condition of every Future, are one summary — from the counters of the listed ones."""
    global _last_summary_ns
    n = len(dirty)
    prims = dirty[:n]
    del dirty[:n]   # appends made meanwhile stay for the next drain
    start, end = _last_summary_ns, now_ns()
    _last_summary_ns = end
    out = []
    for info, ids, c in _group_summaries(prims):
        infos = tuple(st.info() for st in c[A_THREADS])
        details = {key: c[i] for i, key in _COUNTS}
        details.update(releases=c[A_RELEASES], hold_ns_total=c[A_HOLD_SUM],
                       hold_ns_min=c[A_HOLD_MIN], hold_ns_max=c[A_HOLD_MAX],
                       hold_buckets=tuple(c[A_BUCKETS]),
                       hold_bucket_sums_ns=tuple(c[A_BUCKET_SUMS]),
                       threads=infos, instances=tuple(ids))
        out.append(Record(_delivered, _r.SUMMARY, info, infos[0], start or end, end,
                          True, False, None, None, MappingProxyType(details)))
    return out


def _discard_summaries() -> None:
    n = len(dirty)
    _group_summaries(dirty[:n])   # taken (and reset), delivered to nobody
    del dirty[:n]


# ---------------------------------------------------------------------------------------
# Background drainer: a raw thread (never in threading.enumerate()), alive while sinks are.

def _ensure_drainer() -> None:
    global _drainer_running
    with _drain_lock:
        if _drainer_running or not _sinks:
            return
        _drainer_running = True
    if not _drainer_wake.locked():
        _drainer_wake.acquire()
    _raw.start_new_thread(_drainer_main, ())


def _drainer_main() -> None:
    global _drainer_running
    st = current_state()
    st.guard = st.internal = True
    st.name = "tracethread-drainer"
    try:
        while True:
            _drainer_wake.acquire(True, DRAIN_INTERVAL_S)
            with _drain_lock:
                if not _sinks:
                    _drainer_running = False
                    return
                _drain_locked()
    except BaseException:  # noqa: BLE001 - interpreter shutdown
        _drainer_running = False


def _after_fork_in_child() -> None:
    global _drain_lock, _drainer_wake, _drainer_running
    _drain_lock = _raw.allocate_lock()
    _drainer_wake = _raw.allocate_lock()
    _drainer_running = False
    agg_lock._at_fork_reinit()   # bound by the primitives: re-initialized in place
    if _sinks:
        _ensure_drainer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------------------
# Appending one record from a Python path: the C helper if built, else the same in Python.

if speedups is not None:
    speedups.configure(tls=_tls, new_state=new_state, append=buffer.append,
                       lock_acquire=_r.LOCK_ACQUIRE, lock_release=_r.LOCK_RELEASE,
                       rlock_acquire=_r.RLOCK_ACQUIRE, rlock_release=_r.RLOCK_RELEASE,
                       fast_details=_r.D_FAST_ACQUIRE, reenter_details=_r.D_REENTER,
                       on_acquire=_detect.on_acquire,
                       released_elsewhere=_detect.released_elsewhere, known=_detect.known,
                       capture_context=lambda: capture_context())
    speedups.set_thread_state_type(ThreadState)
    on_buffer_change(lambda buf: speedups.set_append(buf.append))
    record = speedups.record
    now_ns = speedups.now_ns
else:
    from time import monotonic_ns as now_ns

    def record(op: str, info: Any, st: ThreadState, t0: int | None, ok: Any, blocked: bool,
               held: int | None, site: Any, details: Any) -> None:
        """Append one record whose end is now (start ``t0``, or now when None)."""
        t1 = now_ns()
        buffer.append((next_seq(), op, info, st, t1 if t0 is None else t0, t1, ok, blocked,
                       held, site, details))
