"""Summaries: counting the operations that neither waited nor woke a thread, instead of
recording each one.

While every sink accepts them (``accepts_summaries = True``: the report's statistics, the
OpenTelemetry metrics), the operations that neither waited nor ended a wait are not
recorded one by one: the uncontended Lock/RLock operations (a fast-path acquire or
re-entry, a release nobody waited for), Condition notifies (that woke nobody, or how
many they woke), Semaphore
acquires that did not wait and releases that woke nobody, and Event set (woke nobody),
clear and wait (did not block). The operation adds to counters kept on the primitive (how
many of each, hold-time total/min/max and histogram buckets, which threads) and lists it
in ``dirty`` once. Each drain takes the counters and delivers one SUMMARY record per
(kind, name).
Everything else (acquires and waits that waited, try-acquires of a Lock/RLock, contended
releases, Semaphore releases and Event sets that woke a thread) is still one record per
operation, and
with any other sink attached (tests' capture(), the trace file, user sinks) every
operation is. This keeps a busy lock's cost to a few counter updates: no tuple per
operation, nothing for the drainer to materialize, no SDK call per hold.

The stream (``stream.py``) switches aggregation (``update_aggregation``) as sinks come and
go, and takes the counters at each drain (``take``).
"""

from __future__ import annotations

import os
import sys
from bisect import bisect_left as _bisect_left
from types import MappingProxyType
from typing import Any, Callable

from . import _raw
from . import records as _r
from ._accel import speedups
from .records import Record, ThreadState

if speedups is not None:
    now_ns = speedups.now_ns
else:
    from time import monotonic_ns as now_ns

# Counters, in the order ``_tt_take()`` returns them (the C locks keep theirs in C). The
# layout is defined once, in C (``COUNTER_LAYOUT`` in _speedups.src/_speedups.h, exported
# as ``COUNTER_FIELDS``); this is the same list for the pure-Python paths, checked equal
# at import, and every index below is taken from it by name.
COUNTER_FIELDS = ("acquires", "reentries", "releases", "inner_releases", "hold_sum",
                  "hold_min", "hold_max", "buckets", "bucket_sums", "threads", "notifies",
                  "failures", "sem_releases", "sets", "clears", "polls", "wakeups", "woken")
if speedups is not None and tuple(getattr(speedups, "COUNTER_FIELDS", ())) != COUNTER_FIELDS:
    raise ImportError("tracethread._speedups is out of date (its counter layout differs): "
                      "rebuild it")
_INDEX = {name: i for i, name in enumerate(COUNTER_FIELDS)}
# (one annotated name a line: the primitives import them in an import cycle mypy must
# resolve without inferring)
A_ACQUIRES: int = _INDEX["acquires"]
A_REENTRIES: int = _INDEX["reentries"]
A_RELEASES: int = _INDEX["releases"]
A_INNER_RELEASES: int = _INDEX["inner_releases"]
A_HOLD_SUM: int = _INDEX["hold_sum"]
A_HOLD_MIN: int = _INDEX["hold_min"]
A_HOLD_MAX: int = _INDEX["hold_max"]
A_BUCKETS: int = _INDEX["buckets"]
A_BUCKET_SUMS: int = _INDEX["bucket_sums"]
A_THREADS: int = _INDEX["threads"]
A_NOTIFIES: int = _INDEX["notifies"]
A_FAILURES: int = _INDEX["failures"]
A_SEM_RELEASES: int = _INDEX["sem_releases"]
A_SETS: int = _INDEX["sets"]
A_CLEARS: int = _INDEX["clears"]
A_POLLS: int = _INDEX["polls"]
A_WAKEUPS: int = _INDEX["wakeups"]
A_WOKEN: int = _INDEX["woken"]
_N_TAKEN = len(COUNTER_FIELDS)
A_LAST: int = _N_TAKEN   # the Python counters list has one more slot: the last thread seen
# Plain operation counts (summed across a summary's instances) and their detail keys.
_COUNTS = ((A_ACQUIRES, "acquisitions"), (A_REENTRIES, "reentries"),
           (A_INNER_RELEASES, "inner_releases"), (A_NOTIFIES, "notifies"),
           (A_FAILURES, "failures"), (A_SEM_RELEASES, "semaphore_releases"),
           (A_SETS, "event_sets"), (A_CLEARS, "event_clears"), (A_POLLS, "event_waits"),
           (A_WAKEUPS, "wakeups"), (A_WOKEN, "woken"))
# Every detail key of a summary that counts operations (the plain counts, but `woken`,
# which counts threads, and the releases).
SUMMARY_OPERATION_KEYS = tuple(key for _, key in _COUNTS if key != "woken") + ("releases",)

aggregating: list[bool] = [False]   # read by the primitives' Python paths
counting: list[bool] = [False]      # summaries are counted: some sink takes them
dirty: list = []        # primitives with counters to take (the C paths append here too)
_NBUCKETS = len(_r.DURATION_BUCKETS) + 1
_ZEROS = (0,) * _NBUCKETS
_BOUNDS = _r.DURATION_BUCKETS
_last_summary_ns = 0


def update_aggregation(sinks: list) -> None:
    """Take the summary path while every sink accepts summaries, and while there is no sink
    at all; count on it only while there are sinks (called with the drain lock held, after
    a forced drain). With no sink, an operation that neither waited nor woke a thread
    records nothing, not even a count: nobody would read it (what detection and
    ``statistics()`` need is the primitives' own state). A sink added later gets the
    operations from that moment (docs/records.md, "No sink")."""
    on = all(getattr(s, "accepts_summaries", False) for s in sinks)
    count = bool(sinks)
    if on != aggregating[0] or count != counting[0]:
        aggregating[0] = on
        counting[0] = count
        if speedups is not None:
            speedups.set_aggregation(on, dirty, _BOUNDS, count)


def _new_counters() -> list:
    # Bucket lists: None where the primitive has no holds (C bump); threads: None until a
    # second thread counts (A_LAST is the one thread until then).
    a: list = [0] * (A_LAST + 1)
    a[A_BUCKETS], a[A_BUCKET_SUMS] = [0] * _NBUCKETS, [0] * _NBUCKETS
    a[A_THREADS] = a[A_LAST] = None
    return a


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


def py_count(prim: Any, st: ThreadState, index: int, n: int = 1) -> None:
    """Count ``n`` (one operation) at ``index`` of ``prim``'s counters, by ``st`` (the
    pure-Python paths' ``bump``)."""
    if not counting[0]:
        return   # no sink: nothing is counted
    a = prim._agg
    if _LOCK_FREE and a is not None and a[A_LAST] is st:
        a[index] += n   # no call since the read: no take in between
        return
    with agg_lock:
        py_touch(prim, st)[index] += n


def py_count_hold(prim: Any, st: ThreadState, held_ns: int) -> None:
    """Count an uncontended hold of ``held_ns`` ended (a release); the bucket is the
    OpenTelemetry SDK's (bisect_left)."""
    if not counting[0]:
        return
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


# bump(prim, st, index, n=1): count one operation (or n) of `prim` by `st` in its summary.
bump: Callable[..., None] = (
    speedups.bump if speedups is not None else py_count)
# bump_hold(lock, st, held_ns): count an uncontended hold of a lock that ended (a release
# nobody waited for) in its summary.
bump_hold: Callable[[Any, ThreadState, int], None] = (
    speedups.bump_hold if speedups is not None else py_count_hold)


def py_take(prim: Any) -> tuple | None:
    """``_tt_take`` of the Python-level primitives: the counters since the last take (the
    layout above, as the C locks return theirs), and start new ones."""
    with agg_lock:
        a = prim._agg
        prim._agg = None
    if a is None:
        return None
    taken = a[:_N_TAKEN]
    if not a[A_RELEASES]:
        taken[A_HOLD_MIN] = 0
    taken[A_BUCKETS] = _ZEROS if a[A_BUCKETS] is None else tuple(a[A_BUCKETS])
    taken[A_BUCKET_SUMS] = _ZEROS if a[A_BUCKET_SUMS] is None else tuple(a[A_BUCKET_SUMS])
    taken[A_THREADS] = (a[A_LAST],) if a[A_THREADS] is None else tuple(a[A_THREADS])
    return tuple(taken)


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


def take(seq: int) -> list[Record]:
    """One SUMMARY record per (kind, name) — primitives made at one site, like the
    Condition of every Future, are one summary — from the counters of the listed ones
    (``seq``: the sequence number they carry, the last one delivered with them)."""
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
        out.append(Record(seq, _r.SUMMARY, info, infos[0], start or end, end,
                          True, False, None, None, MappingProxyType(details)))
    return out


def discard() -> None:
    n = len(dirty)
    _group_summaries(dirty[:n])   # taken (and reset), delivered to nobody
    del dirty[:n]


def _after_fork_in_child() -> None:
    # Bound by the primitives: re-initialized in place (the C RLock's private method, not
    # in typeshed).
    agg_lock._at_fork_reinit()  # type: ignore[attr-defined]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


update_aggregation([])   # no sink yet: the summary path, counting nothing
