"""Summaries: while every sink accepts them, the operations that neither waited nor woke a
thread (uncontended Lock/RLock operations, Condition notifies that woke nobody, Semaphore
acquires that did not wait and releases that woke nobody, Event set/clear/wait likewise)
are counted on the primitive and delivered as one ``summary`` record per kind and name and
drain; the numbers must be exactly what one record per operation would have given.
(tests/test_conformance.py runs this file again on the pure-Python fast paths.)"""

import threading

import pytest

import tracethread
from tracethread import testing
from tracethread._core import errors, stream, summaries
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
    assert summaries.aggregating[0]
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


def test_each_summary_has_only_the_holds_since_the_one_before(sink):
    # Holds in far-apart buckets, then one short hold: the next summary must not carry the
    # buckets of the first (the C locks clear only the buckets they wrote).
    lock = tracethread.Lock()
    with lock:
        threading.Event().wait(0.003)
    with lock:
        pass
    tracethread.flush()
    for _ in range(3):
        with lock:
            pass
        tracethread.flush()
    got = sink.summaries(lock)
    assert len(got) >= 4
    for s in got:
        d = s.details
        assert sum(d["hold_buckets"]) == d["releases"]
        assert sum(d["hold_bucket_sums_ns"]) == d["hold_ns_total"]
        assert all(not n or d["hold_ns_min"] * n <= total <= d["hold_ns_max"] * n
                   for n, total in zip(d["hold_buckets"], d["hold_bucket_sums_ns"]))
    assert sink.total(lock, "releases") == 5
    assert [s.details["releases"] for s in got[-3:]] == [1, 1, 1]


def test_counts_made_while_a_take_runs_python_code_go_to_the_next_summary(sink):
    # The take may run Python code between primitives (an info's attributes, a collection):
    # another thread's holds meanwhile must be in the next summary, not lost.
    from tracethread._core.summaries import _group_summaries
    lock = tracethread.Lock(name="L")
    real = lock._info
    go, done = threading.Event(), threading.Event()

    class SlowInfo:
        name, id, site = "L", real.id, None

        @property
        def kind(self):
            go.set()
            assert done.wait(TIMEOUT)   # the worker's holds happen during the take
            return "Lock"

    def worker():
        go.wait(TIMEOUT)
        for _ in range(200):
            with lock:
                pass
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    tracethread.flush()
    with lock:
        pass
    with stream._drain_lock:   # (the drainer must not take this lock's counts meanwhile)
        lock._info = SlowInfo()
        try:
            taken = _group_summaries([lock])
        finally:
            lock._info = real
    t.join(TIMEOUT)
    tracethread.flush()
    assert [c[2] for _, _, c in taken] == [1]   # this take: the one hold before it
    assert sink.total(lock, "releases") == 200
    for s in sink.summaries(lock):
        assert sum(s.details["hold_buckets"]) == s.details["releases"]


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


def test_an_rlock_acquire_on_its_python_path_is_counted_once(sink):
    # The C fast path hands an acquire to the Python one (``_acquire_py``) when its
    # try-acquire lost a race to a release, or the arguments are not the defaults (an
    # explicit ``timeout=-1.0``): that path must count it too, and never fail on counters
    # the C lock does not have (it once raised AttributeError, leaving the lock held).
    rlock = tracethread.RLock()
    assert rlock._acquire_py(True, -1)
    assert rlock.acquire(True, -1.0)
    assert rlock.acquire()
    for _ in range(3):
        rlock.release()
    assert not rlock.locked()
    tracethread.flush()
    records = [r for r in sink.records if r.op == R.RLOCK_ACQUIRE
               and r.primitive is rlock._info]
    assert len(records) + sink.total(rlock, "acquisitions") + sink.total(
        rlock, "reentries") == 3


@pytest.mark.parametrize("order", [["a", "main"], ["a", "main", "a", "main"],
                                   ["a", "b", "main", "a"]])
@pytest.mark.parametrize("kind", ["Lock", "Condition.notify"])
def test_threads_of_a_summary_are_all_listed(sink, kind, order):
    # One thread after another (two, alternating, three): every one listed once.
    prim = tracethread.Lock() if kind == "Lock" else tracethread.Condition()

    def work():
        for _ in range(100):
            if kind == "Lock":
                with prim:
                    pass
            else:
                with prim:
                    prim.notify()

    for who in order:
        if who == "main":
            work()
        else:
            t = threading.Thread(target=work, name=f"summary-{who}")
            t.start()
            t.join(TIMEOUT)
    tracethread.flush()
    names = {t.name for s in sink.summaries(prim) for t in s.details["threads"]}
    assert names == {threading.current_thread().name if w == "main" else f"summary-{w}"
                     for w in order}
    key = "acquisitions" if kind == "Lock" else "notifies"
    assert sink.total(prim, key) == 100 * len(order)


def test_any_sink_that_does_not_accept_summaries_gets_every_operation(sink):
    lock = tracethread.Lock()
    with testing.capture() as cap:  # capture() wants every record
        assert not summaries.aggregating[0]
        for _ in range(10):
            with lock:
                pass
    assert summaries.aggregating[0]  # back once the capture is gone
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


def test_notifies_are_counted_those_that_woke_with_the_threads_they_woke(sink):
    # A notify that woke a thread was a record of its own until issue 20: the sinks that
    # take summaries only count it (the report's operations, the OTel notifications).
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
    assert (sink.total(cond, "wakeups"), sink.total(cond, "woken")) == (1, 1)
    assert not [r for r in sink.records if r.op in (R.CONDITION_NOTIFY, R.CONDITION_NOTIFY_ALL)
                and r.primitive is cond._info]


def test_semaphore_and_event_operations_that_did_not_wait_are_counted(sink):
    sem, event = tracethread.BoundedSemaphore(2), tracethread.Event()
    for _ in range(100):
        with sem:
            assert sem.acquire(False)
            assert not sem.acquire(False)           # try-acquires that got nothing
            assert not sem.acquire(timeout=0)       # a timeout of 0 cannot wait either
            sem.release()
        event.set()
        assert event.wait() and event.wait(0)       # already set: no wait
        event.clear()
        assert not event.wait(0) and not event.wait(-1)   # a look at the flag
    tracethread.flush()
    assert not [r for r in sink.records if r.op != R.SUMMARY
                and r.primitive in (sem._info, event._info)]
    assert {k: sink.total(sem, k) for k in ("acquisitions", "failures",
                                             "semaphore_releases")} == {
        "acquisitions": 200, "failures": 200, "semaphore_releases": 200}
    assert {k: sink.total(event, k) for k in ("event_sets", "event_clears",
                                               "event_waits")} == {
        "event_sets": 100, "event_clears": 100, "event_waits": 400}


def test_semaphore_and_event_operations_that_waited_or_woke_are_records(sink):
    sem, event = tracethread.Semaphore(0), tracethread.Event()
    got = []

    def waiter():
        got.append(sem.acquire(timeout=TIMEOUT))
        got.append(event.wait(TIMEOUT))

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    testing.wait_until_blocked(sem, 1, timeout=TIMEOUT)
    sem.release()                      # woke the waiter: a record
    testing.wait_until_blocked(event, 1, timeout=TIMEOUT)
    event.set()                        # woke the waiter: a record
    t.join(TIMEOUT)
    assert not sem.acquire(timeout=0.01)   # waited and timed out: a record
    tracethread.flush()
    assert got == [True, True]
    ops = [(r.op, r.ok, r.blocked, r.timed_out) for r in sink.records
           if r.op != R.SUMMARY and r.primitive in (sem._info, event._info)]
    assert sorted(ops) == sorted([
        (R.SEMAPHORE_ACQUIRE, True, True, False), (R.SEMAPHORE_RELEASE, True, False, False),
        (R.EVENT_WAIT, True, True, False), (R.EVENT_SET, True, False, False),
        (R.SEMAPHORE_ACQUIRE, False, True, True)])
    assert not sink.summaries(sem) and not sink.summaries(event)


@pytest.mark.parametrize("kind", ["Condition.notify", "Event.clear", "Semaphore", "Lock"])
def test_counting_from_many_threads_while_the_drainer_takes_loses_nothing(sink, kind):
    prim = {"Condition.notify": tracethread.Condition, "Event.clear": tracethread.Event,
            "Semaphore": lambda: tracethread.Semaphore(4), "Lock": tracethread.Lock}[kind]()
    threads, rounds = 4, 5000

    def work():
        for _ in range(rounds):
            if kind == "Condition.notify":
                with prim:
                    prim.notify()
            elif kind == "Event.clear":
                prim.clear()
            elif kind == "Lock":
                with prim:
                    pass
            else:
                prim.acquire()
                prim.release()
            if _ % 25 == 0:
                tracethread.flush()   # takes while the other threads count

    import sys
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # switch threads as often as the interpreter can
    try:
        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(TIMEOUT)
    finally:
        sys.setswitchinterval(interval)
    tracethread.flush()
    records = [r for r in sink.records if r.primitive is prim._info and r.op != R.SUMMARY]
    key, op = {"Condition.notify": ("notifies", R.CONDITION_NOTIFY),
               "Event.clear": ("event_clears", R.EVENT_CLEAR),
               "Semaphore": ("acquisitions", R.SEMAPHORE_ACQUIRE),
               "Lock": ("acquisitions", R.LOCK_ACQUIRE)}[kind]
    assert sink.total(prim, key) + sum(r.op == op for r in records) == threads * rounds
    if kind == "Lock":   # and every hold, once: in the summaries or as a record
        holds = [r for r in records if r.op == R.LOCK_RELEASE]
        assert sink.total(prim, "releases") + len(holds) == threads * rounds
        assert sum(sum(r.details["hold_buckets"]) for r in sink.summaries(prim)) == \
            sink.total(prim, "releases")


def test_report_statistics_are_the_same_either_way():
    def workload():
        lock, rlock = tracethread.Lock(name="stats-lock"), tracethread.RLock(name="stats-r")
        cond = tracethread.Condition(lock, name="stats-cond")
        sem = tracethread.Semaphore(1, name="stats-sem")
        event = tracethread.Event(name="stats-event")
        for _ in range(300):
            with lock:
                with rlock:
                    with rlock:
                        pass
                cond.notify()
            with sem:
                sem.acquire(timeout=0)
            event.set()
            event.wait()
            event.clear()
            event.wait(0)
        wake = tracethread.Condition(tracethread.Lock(name="wake-lock"), name="stats-wake")
        woke = []

        def waiter():
            with wake:
                woke.append(wake.wait(TIMEOUT))

        for _ in range(5):   # a notify that woke a thread: counted, or a record
            t = tracethread.Thread(target=waiter)
            t.start()
            testing.wait_until_blocked(wake, 1)
            with wake:
                wake.notify()
            t.join(TIMEOUT)
        assert woke == [True] * 5
        tracethread.flush()

    import contextlib
    rows, failures_waits = [], []
    for every_op in (False, True):
        stats = StatsSink()
        tracethread.add_sink(stats)
        try:
            with testing.capture() if every_op else contextlib.nullcontext():
                assert summaries.aggregating[0] is not every_op
                workload()
        finally:
            tracethread.remove_sink(stats)
        rows.append({k: (r.operations, r.acquisitions, r.contentions, len(r.threads))
                     for k, r in stats.rows.items() if r.name.startswith("stats-")})
        failures_waits.append({r.name: (r.failures, r.waits) for r in stats.rows.values()
                               if r.name in ("stats-sem", "stats-event")})
    assert rows[0] == rows[1]
    assert rows[0][("Lock", "stats-lock")] == (600, 300, 0, 1)
    assert rows[0][("RLock", "stats-r")] == (1200, 600, 0, 1)
    assert rows[0][("Condition", "stats-cond")] == (300, 0, 0, 1)
    assert rows[0][("Semaphore", "stats-sem")] == (900, 300, 0, 1)
    assert rows[0][("Event", "stats-event")] == (1200, 0, 0, 1)
    assert rows[0][("Condition", "stats-wake")] == (10, 0, 0, 6)   # 5 waits, 5 notifies
    assert failures_waits[0] == failures_waits[1] == {"stats-sem": (300, 0),
                                                      "stats-event": (0, 600)}


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


def _uncontended_round(lock, rlock, sem, event, cond):
    with lock:
        pass
    with rlock:
        with rlock:
            pass
    with sem:
        pass
    event.clear()
    with cond:
        cond.notify()


def test_with_no_sink_an_uncontended_operation_records_and_counts_nothing():
    # install() alone (a library user's program or test, no sink attached): every
    # operation used to be built into a full record in the ring buffer nobody reads.
    assert tracethread.sinks() == ()
    prims = (tracethread.Lock(), tracethread.RLock(), tracethread.Semaphore(2),
             tracethread.Event(), tracethread.Condition())
    before = len(stream.buffer)
    dirty = len(summaries.dirty)
    for _ in range(100):
        _uncontended_round(*prims)
    assert len(stream.buffer) == before
    assert len(summaries.dirty) == dirty   # nothing counted, nothing kept alive


def _blocking_round():
    """Operations that wait or wake a thread (records, never summaries): a contended Lock,
    a Condition wait woken by a notify, an Event wait, a Semaphore acquire that waited, a
    Barrier pass, a wait that times out, a thread's start, run and join."""
    lock, cond, ev = tracethread.Lock(), tracethread.Condition(), tracethread.Event()
    sem, barrier = tracethread.Semaphore(0), tracethread.Barrier(2)
    ready = []

    def other():
        with lock:
            pass
        with cond:
            while not ready:
                cond.wait()
        ev.wait()
        sem.acquire()
        barrier.wait()

    lock.acquire()
    t = tracethread.Thread(target=other)
    t.start()
    testing.wait_until_blocked(lock, 1)
    lock.release()
    testing.wait_until_blocked(cond, 1)
    with cond:
        ready.append(1)
        cond.notify()
        cond.wait(0.001)
    ev.set()
    testing.wait_until_blocked(sem, 1)
    sem.release()
    barrier.wait()
    t.join(TIMEOUT)
    assert not t.is_alive()
    return lock, cond


def test_with_no_sink_an_operation_that_waited_makes_no_record_either():
    # Records are made for sinks; with none attached (install() alone) nothing reads
    # them: a wait, a notify that woke a thread, a contended hold, a thread's start and
    # join used to be built, call site and all, into the buffer nobody drains.
    assert tracethread.sinks() == ()
    before = len(stream.buffer)
    dropped = errors.stats()["dropped"]
    _blocking_round()
    assert len(stream.buffer) == before
    capture = testing.MemorySink()   # and a sink attached afterwards gets them all
    tracethread.add_sink(capture)
    try:
        lock, cond = _blocking_round()
        tracethread.flush()
    finally:
        tracethread.remove_sink(capture)
    ops = {r.op for r in capture.records}
    assert {R.LOCK_ACQUIRE, R.LOCK_RELEASE, R.CONDITION_WAIT, R.CONDITION_NOTIFY,
            R.EVENT_WAIT, R.SEMAPHORE_ACQUIRE, R.BARRIER_WAIT, R.THREAD_START,
            R.THREAD_JOIN} <= ops, ops
    waits = [r for r in capture.records if r.op == R.CONDITION_WAIT]
    assert [(w.ok, w.blocked) for w in waits] == [(True, True), (False, True)]
    assert all(w.site is not None and w.site.file.endswith("test_summaries.py")
               for w in waits)
    assert errors.stats()["dropped"] == dropped   # (and nothing counted as lost)
    assert len(stream.buffer) == before


def test_a_sink_attached_later_gets_the_operations_from_that_moment():
    prims = (tracethread.Lock(), tracethread.RLock(), tracethread.Semaphore(2),
             tracethread.Event(), tracethread.Condition())
    for _ in range(100):   # before any sink: not counted
        _uncontended_round(*prims)
    sink = SummarySink()
    tracethread.add_sink(sink)
    try:
        for _ in range(5):
            _uncontended_round(*prims)
        tracethread.flush()
    finally:
        tracethread.remove_sink(sink)
    lock, rlock, sem, event, cond = prims
    assert (sink.total(lock, "acquisitions"), sink.total(lock, "releases")) == (5, 5)
    assert (sink.total(rlock, "acquisitions"), sink.total(rlock, "reentries"),
            sink.total(rlock, "inner_releases"), sink.total(rlock, "releases")) == (5, 5, 5, 5)
    assert (sink.total(sem, "acquisitions"), sink.total(sem, "semaphore_releases")) == (5, 5)
    assert sink.total(event, "event_clears") == 5
    assert sink.total(cond, "notifies") == 5


def test_a_hold_begun_with_no_sink_is_never_measured_from_the_clocks_zero():
    # With no sink, an uncontended acquire skips the clock. A hold begun then and ended
    # after a sink was added (here: the RLock's release inside Condition.wait) read as
    # ~16 hours (the monotonic clock since boot) until it was checked.
    cond = tracethread.Condition()
    cond.acquire()                       # no sink yet
    sink = SummarySink()
    capture = testing.MemorySink()       # takes every operation: the release is a record
    tracethread.add_sink(sink)
    tracethread.add_sink(capture)
    try:
        cond.wait(0.01)
        cond.release()
        tracethread.flush()
    finally:
        tracethread.remove_sink(capture)
        tracethread.remove_sink(sink)
    lock_info = getattr(cond, "_lock", None)
    releases = [r for r in capture.records if r.op in (R.RLOCK_RELEASE, R.LOCK_RELEASE)
                and r.held_ns is not None and r.primitive is getattr(lock_info, "_info", None)]
    assert releases
    assert all(0 <= r.held_ns < 10 * 10**9 for r in releases), [r.held_ns for r in releases]
