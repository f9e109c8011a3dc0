"""Summaries: while every sink accepts them, uncontended Lock/RLock operations are counted on
the lock and delivered as one ``summary`` record per lock and drain (so are Condition
notifies that woke nobody); the numbers must
be exactly what one record per operation would have given. (tests/test_conformance.py runs
this file again on the pure-Python fast paths.)"""

import threading

import pytest

import tracethread
from tracethread import testing
from tracethread._core import recorder
from tracethread._core import records as R
from tracethread.exporters.stats import StatsSink

TIMEOUT = 10


class SummarySink:
    accepts_summaries = True

    def __init__(self):
        self.records = []

    def handle(self, records):
        self.records += records

    def summaries(self, prim):
        return [r for r in self.records if r.op == R.SUMMARY and r.primitive is prim._info]

    def total(self, prim, key):
        return sum(r.details[key] for r in self.summaries(prim))


@pytest.fixture
def sink():
    s = SummarySink()
    tracethread.add_sink(s)
    try:
        yield s
    finally:
        tracethread.remove_sink(s)


def test_uncontended_operations_become_one_summary_per_lock(sink):
    assert recorder.aggregating[0]
    lock, rlock = tracethread.Lock(), tracethread.RLock()
    for _ in range(1000):
        with lock:
            pass
        with rlock:
            with rlock:  # re-entry and inner release
                pass
    tracethread.flush()
    assert not [r for r in sink.records if r.op in (R.LOCK_ACQUIRE, R.LOCK_RELEASE)
                and r.primitive is lock._info]
    got = sink.summaries(lock)  # one per drain (the background drainer may run meanwhile)
    assert 1 <= len(got) < 100
    assert (sink.total(lock, "acquisitions"), sink.total(lock, "reentries"),
            sink.total(lock, "releases"), sink.total(lock, "inner_releases")) == (
        1000, 0, 1000, 0)
    for s in got:
        d = s.details
        assert sum(d["hold_buckets"]) == d["releases"]
        assert len(d["hold_buckets"]) == len(R.DURATION_BUCKETS) + 1
        assert sum(d["hold_bucket_sums_ns"]) == d["hold_ns_total"] > 0
        assert 0 < d["hold_ns_min"] <= d["hold_ns_total"] / d["releases"] <= d["hold_ns_max"]
        assert [t.name for t in d["threads"]] == [threading.current_thread().name]
        assert d["instances"] == (lock._info.id,)
        assert s.thread.name == threading.current_thread().name
        assert s.start_ns <= s.end_ns
    assert (sink.total(rlock, "acquisitions"), sink.total(rlock, "reentries"),
            sink.total(rlock, "releases"), sink.total(rlock, "inner_releases")) == (
        1000, 1000, 1000, 1000)


def test_a_hold_is_counted_in_the_bucket_the_otel_sdk_would_choose(sink):
    import bisect
    lock = tracethread.Lock()
    with lock:
        threading.Event().wait(0.003)  # a hold of 3 ms and some
    tracethread.flush()
    (s,) = sink.summaries(lock)
    d = s.details
    held = d["hold_ns_total"]
    i = bisect.bisect_left(R.DURATION_BUCKETS, held / 1e9)
    assert d["hold_buckets"][i] == 1 and d["hold_bucket_sums_ns"][i] == held
    assert held >= 3_000_000 and d["hold_ns_min"] == d["hold_ns_max"] == held


def test_what_waited_is_still_one_record_per_operation(sink):
    lock = tracethread.Lock()
    lock.acquire()
    t = threading.Thread(target=lambda: (lock.acquire(), lock.release()), daemon=True)
    t.start()
    testing.wait_until_blocked(lock, 1, timeout=TIMEOUT)
    lock.release()  # contended: somebody waited
    t.join(TIMEOUT)
    assert lock.acquire(False)  # not the default blocking call: a record
    lock.release()
    tracethread.flush()
    ops = [(r.op, r.blocked, r.details.get("contended")) for r in sink.records
           if r.primitive is lock._info and r.op != R.SUMMARY]
    assert (R.LOCK_ACQUIRE, True, None) in ops           # the waiter's acquire
    assert (R.LOCK_RELEASE, False, True) in ops          # the contended hold
    assert sink.total(lock, "acquisitions") == 1         # the first, uncontended acquire
    # Everything accounted once: 3 acquisitions (first, waiter, try) and 3 releases.
    acquires = sum(1 for op in ops if op[0] == R.LOCK_ACQUIRE)
    releases = sum(1 for op in ops if op[0] == R.LOCK_RELEASE)
    assert acquires + sink.total(lock, "acquisitions") == 3
    assert releases + sink.total(lock, "releases") == 3


def test_threads_of_a_summary_are_all_listed(sink):
    lock = tracethread.Lock()

    def work():
        for _ in range(100):
            with lock:
                pass

    t = threading.Thread(target=work, name="summary-worker")
    t.start()
    t.join(TIMEOUT)
    for _ in range(100):
        with lock:
            pass
    tracethread.flush()
    names = {t.name for s in sink.summaries(lock) for t in s.details["threads"]}
    assert names == {"summary-worker", threading.current_thread().name}
    assert sink.total(lock, "acquisitions") == 200


def test_any_sink_that_does_not_accept_summaries_gets_every_operation(sink):
    lock = tracethread.Lock()
    with testing.capture() as cap:  # capture() wants every record
        assert not recorder.aggregating[0]
        for _ in range(10):
            with lock:
                pass
    assert recorder.aggregating[0]  # back once the capture is gone
    assert len(cap.of(lock)) == 20
    tracethread.flush()
    got = [r for r in sink.records if r.primitive is lock._info]
    assert len(got) == 20 and not sink.summaries(lock)


def test_switching_while_counts_are_pending_loses_nothing(sink):
    lock = tracethread.Lock()
    for _ in range(50):
        with lock:
            pass
    with testing.capture() as cap:  # adding a sink drains (and summarizes) first
        for _ in range(5):
            with lock:
                pass
    tracethread.flush()
    assert sink.total(lock, "acquisitions") == 50
    assert len([r for r in sink.records if r.op == R.LOCK_ACQUIRE
                and r.primitive is lock._info]) == 5
    assert len(cap.of(lock)) == 10   # the capture saw only its own


def test_notifies_that_woke_nobody_are_counted_and_the_others_recorded(sink):
    cond = tracethread.Condition()
    with cond:
        for _ in range(100):
            cond.notify()
        cond.notify_all()
    woke = []

    def waiter():
        with cond:
            woke.append(cond.wait(TIMEOUT))

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    testing.wait_until_blocked(cond, 1, timeout=TIMEOUT)
    with cond:
        cond.notify()
    t.join(TIMEOUT)
    tracethread.flush()
    assert woke == [True]
    assert sink.total(cond, "notifies") == 101
    notified = [r for r in sink.records if r.op == R.CONDITION_NOTIFY
                and r.primitive is cond._info]
    assert len(notified) == 1 and notified[0].details["woken"] == 1


def test_report_statistics_are_the_same_either_way():
    def workload():
        lock, rlock = tracethread.Lock(name="stats-lock"), tracethread.RLock(name="stats-r")
        cond = tracethread.Condition(lock, name="stats-cond")
        for _ in range(300):
            with lock:
                with rlock:
                    with rlock:
                        pass
                cond.notify()
        tracethread.flush()

    import contextlib
    rows = []
    for every_op in (False, True):
        stats = StatsSink()
        tracethread.add_sink(stats)
        try:
            with testing.capture() if every_op else contextlib.nullcontext():
                assert recorder.aggregating[0] is not every_op
                workload()
        finally:
            tracethread.remove_sink(stats)
        rows.append({k: (r.operations, r.acquisitions, r.contentions, len(r.threads))
                     for k, r in stats.rows.items() if r.name.startswith("stats-")})
    assert rows[0] == rows[1]
    assert rows[0][("Lock", "stats-lock")] == (600, 300, 0, 1)
    assert rows[0][("RLock", "stats-r")] == (1200, 600, 0, 1)
    assert rows[0][("Condition", "stats-cond")] == (300, 0, 0, 1)


def test_a_lock_is_collected_once_its_summary_is_taken(sink):
    import gc
    import weakref
    lock = tracethread.Lock()
    with lock:
        pass
    ref = weakref.ref(lock)
    del lock
    tracethread.flush()  # the pending list let go of it
    gc.collect()
    assert ref() is None


def test_primitives_made_at_one_site_share_one_summary(sink):
    made = []
    for _ in range(50):
        lock = tracethread.Lock()  # one site: one name
        made.append(lock)
        with lock:
            pass
    with made[0]:
        threading.Event().wait(0.002)
    tracethread.flush()
    summaries = [r for r in sink.records if r.op == R.SUMMARY
                 and r.primitive.name == made[0].name]
    # One per drain (the background drainer may have run during the loop), never one per
    # lock: each lists the instances it stands for.
    assert 1 <= len(summaries) < 10
    ids = [i for r in summaries for i in r.details["instances"]]
    assert set(ids) == {lock._info.id for lock in made}

    def total(key):
        return sum(r.details[key] for r in summaries)

    assert (total("acquisitions"), total("releases")) == (51, 51)
    assert sum(sum(r.details["hold_buckets"]) for r in summaries) == 51
    assert sum(sum(r.details["hold_bucket_sums_ns"]) for r in summaries) == total(
        "hold_ns_total")
    assert max(r.details["hold_ns_max"] for r in summaries) >= 2_000_000
    assert 0 < min(r.details["hold_ns_min"] for r in summaries) < 2_000_000
    stats = StatsSink()
    stats.handle(summaries)
    (row,) = stats.rows.values()
    assert len(row.instances) == 50 and row.acquisitions == 51 and row.operations == 102
