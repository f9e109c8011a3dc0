"""Each operation's record, with its fields. Interleavings are forced with observable state
(``testing.wait_until_blocked``), never with sleeps."""

import gc
import os
import sys
import weakref
import threading

import pytest

import tracethread
from tracethread import testing
from tracethread._core import _raw

HERE = os.path.basename(__file__)
TIMEOUT = 10


def _line_of(marker):
    with open(__file__) as f:
        for n, line in enumerate(f, 1):
            if marker in line and "_line_of" not in line:
                return n
    raise AssertionError(marker)


def _start(fn, name=None):
    t = threading.Thread(target=fn, name=name, daemon=True)
    t.start()
    return t


def test_uncontended_lock_acquire_and_release():
    lock = tracethread.Lock()  # marker: lock-created
    me = threading.current_thread()
    with testing.capture() as cap:
        with lock:
            pass
    acq, rel = cap.of(lock)
    assert (acq.op, rel.op) == ("lock.acquire", "lock.release")
    assert acq.ok is True and acq.blocked is False and acq.site is None
    assert dict(acq.details) == {"blocking": True, "timeout": None}
    assert acq.start_ns == acq.end_ns <= rel.start_ns
    assert rel.held_ns == rel.end_ns - acq.end_ns >= 0
    assert acq.thread.ident == me.ident and acq.thread.native_id == me.native_id
    assert acq.thread.name == me.name
    p = acq.primitive
    assert p.kind == "Lock" and p is rel.primitive
    assert p.site.file.endswith(HERE) and p.site.line == _line_of("marker: lock-created")
    assert p.name == f"{p.site.file}:{p.site.line}" == lock.name
    assert acq.seq < rel.seq


def test_try_acquire_that_fails_is_recorded_as_such():
    lock = tracethread.Lock(name="busy")
    lock.acquire()
    try:
        with testing.capture() as cap:
            assert lock.acquire(False) is False
    finally:
        lock.release()
    (rec,) = cap.of(lock)
    assert rec.ok is False and rec.blocked is False and not rec.timed_out
    assert rec.details["blocking"] is False


def test_contended_acquire_records_the_wait_and_the_call_site():
    lock = tracethread.Lock(name="contended")
    lock.acquire()
    with testing.capture() as cap:
        def waiter():
            with lock:  # marker: contended-acquire
                pass
        t = _start(waiter, name="waiter-1")
        testing.wait_until_blocked(lock, 1)
        stats = lock.statistics()
        assert stats.locked and stats.owner.ident == threading.get_ident()
        assert [w.name for w in stats.waiting] == ["waiter-1"]
        lock.release()
        t.join(TIMEOUT)
    acquires = [r for r in cap.of(lock) if r.op == "lock.acquire"]
    (rec,) = [r for r in acquires if r.thread.name == "waiter-1"]
    assert rec.ok and rec.blocked
    assert rec.site.file.endswith(HERE) and rec.site.line == _line_of("marker: contended-acq")
    assert rec.site.function == "waiter"
    # (by thread, not by position: the waiter may record its acquire and release before
    # the main thread has recorded the release that let it in; seq is the records' order)
    (main_release,) = [r for r in cap.of(lock) if r.op == "lock.release" and
                       r.thread.ident == threading.get_ident()]
    assert rec.start_ns <= main_release.end_ns <= rec.end_ns
    assert main_release.details["contended"] is True


def test_timed_acquire_that_times_out():
    lock = tracethread.Lock()
    lock.acquire()
    try:
        with testing.capture() as cap:
            assert lock.acquire(timeout=0.01) is False
    finally:
        lock.release()
    (rec,) = cap.of(lock)
    assert rec.ok is False and rec.blocked and rec.timed_out
    assert rec.details["timeout"] == 0.01
    assert rec.duration_ns >= 5_000_000


def test_lock_released_by_another_thread():
    lock = tracethread.Lock()
    with testing.capture() as cap:
        lock.acquire()
        t = _start(lock.release, name="releaser")
        t.join(TIMEOUT)
    acq, rel = cap.of(lock)
    assert acq.thread.name == threading.current_thread().name
    assert rel.op == "lock.release" and rel.thread.name == "releaser"
    assert rel.held_ns >= 0 and not lock.locked()


def test_rlock_reentry_and_outermost_release():
    r = tracethread.RLock(name="r")
    with testing.capture() as cap:
        with r:
            with r:
                assert r.statistics().count == 2
    ops = [(x.op, bool(x.details.get("reentrant")), x.held_ns is not None)
           for x in cap.of(r)]
    assert ops == [("rlock.acquire", False, False), ("rlock.acquire", True, False),
                   ("rlock.release", False, False), ("rlock.release", False, True)]


def test_condition_wait_releases_and_reacquires_an_rlock_through_its_protocol():
    cond = tracethread.Condition(name="c")
    with testing.capture() as cap:
        with cond:
            with cond:  # held twice: wait() must release both levels
                assert cond.wait(0.001) is False
    lock_recs = [x for x in cap.records if x.op.startswith("rlock.")]
    via = [(x.op, dict(x.details).get("via"), dict(x.details).get("count"))
           for x in lock_recs if "via" in x.details]
    assert via == [("rlock.release", "condition.wait", 2),
                   ("rlock.acquire", "condition.wait", None)]
    (wait,) = cap.ops("condition.wait")
    assert wait.ok is False and wait.timed_out and wait.primitive.kind == "Condition"
    assert wait.details["reacquired_ns"] >= wait.end_ns


def test_notify_and_notify_all_count_who_they_woke():
    cond = tracethread.Condition(name="c")
    n = 3
    woke = []

    def waiter():
        with cond:
            woke.append(cond.wait(TIMEOUT))  # marker: cond-wait

    with testing.capture() as cap:
        threads = [_start(waiter) for _ in range(n)]
        testing.wait_until_blocked(cond, n)
        with cond:
            cond.notify(2)
        testing.wait_until(lambda: len(woke) == 2)
        with cond:
            cond.notify_all()
            cond.notify()  # nobody left
        for t in threads:
            t.join(TIMEOUT)
    assert woke == [True] * n
    notes = [(x.op, x.details["n"], x.details["woken"], x.ok)
             for x in cap.ops("condition.notify", "condition.notify_all")]
    assert notes == [("condition.notify", 2, 2, True), ("condition.notify_all", 1, 1, True),
                     ("condition.notify", 1, 0, False)]
    waits = cap.ops("condition.wait")
    assert len(waits) == n and all(w.ok and w.blocked for w in waits)
    assert {w.site.line for w in waits} == {_line_of("marker: cond-wait")}


def test_notify_takes_any_n_the_stdlib_takes():
    """notify(n) wakes min(n, waiting) for any int (0, negative, past 64 bits) and for an
    n that is not an int (the stdlib compares and subtracts whatever it is given); it
    refuses an un-acquired lock as the stdlib does. The C paths take the ints themselves
    (issue 20), so each case is checked against what a sink is given."""
    cond = tracethread.Condition(name="c")
    woke = []

    def waiter():
        with cond:
            woke.append(cond.wait(TIMEOUT))

    with pytest.raises(RuntimeError, match="un-acquired"):
        cond.notify()
    with testing.capture() as cap:
        threads = [_start(waiter) for _ in range(4)]
        testing.wait_until_blocked(cond, 4)
        with cond:
            cond.notify(0)
            cond.notify(-3)
            cond.notify(1.5)          # 1.5 > 0, then 0.5 > 0: two woken, as the stdlib
        testing.wait_until(lambda: len(woke) == 2)
        with cond:
            cond.notify(2 ** 70)
        for t in threads:
            t.join(TIMEOUT)
    assert woke == [True] * 4
    notes = [(x.details["n"], x.details["woken"], x.ok) for x in cap.ops("condition.notify")]
    assert notes == [(0, 0, False), (-3, 0, False), (1.5, 2, True), (2 ** 70, 2, True)]


@pytest.mark.parametrize("make_lock", [None, tracethread.Lock, tracethread.RLock],
                         ids=["default", "Lock", "RLock"])
def test_an_exception_inside_condition_wait_leaves_the_lock_held_and_no_waiter(make_lock):
    """A signal handler raising while wait() blocks (as Ctrl-C does): the exception comes
    out of wait(), the caller holds the lock again (wait's finally), its waiter is gone
    and the wait is recorded as not notified. The C wait (issue 20) keeps the stdlib's
    order."""
    import signal

    class Boom(Exception):
        pass

    def handler(signum, frame):
        raise Boom()

    cond = tracethread.Condition(make_lock(name="l") if make_lock else None, name="c")
    old = signal.signal(signal.SIGUSR1, handler)
    main = threading.get_ident()
    try:
        kicker = _start(lambda: (testing.wait_until_blocked(cond, 1),
                                 signal.pthread_kill(main, signal.SIGUSR1)))
        with testing.capture() as cap:
            with cond:
                with pytest.raises(Boom):
                    cond.wait(TIMEOUT)
                assert cond._is_owned()
                assert len(cond._waiters) == 0
        kicker.join(TIMEOUT)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert not cond._lock.locked()
    (wait,) = cap.ops("condition.wait")
    assert wait.ok is False and wait.blocked and wait.details["timeout"] == TIMEOUT


def test_a_condition_subclass_has_its_own_lock_protocol_called_by_wait():
    """wait() calls the Condition's _is_owned, _release_save and _acquire_restore, as the
    stdlib's does over a Lock: a subclass overriding them is honoured (the C wait takes
    only an exact tracethread.Condition; review of issue 20)."""
    calls = []

    def subclass(base):
        class Watched(base):
            def _is_owned(self):
                calls.append("owned")
                return super()._is_owned()

            def _release_save(self):
                calls.append("save")
                return super()._release_save()

            def _acquire_restore(self, state):
                calls.append("restore")
                return super()._acquire_restore(state)
        return Watched

    seen = []   # (over a Lock: the stdlib stores the protocol of an RLock, not a Lock's,
    #             in the instance, where it would hide the subclass's methods)
    for base, lock in ((_raw.StdCondition, _raw.allocate_lock()),
                       (tracethread.Condition, tracethread.Lock())):
        calls.clear()
        cond = subclass(base)(lock)
        with cond:
            assert cond.wait(0.001) is False
        seen.append(list(calls))
    assert seen[0] == seen[1] == ["owned", "save", "restore"]


def test_event_records():
    ev = tracethread.Event(name="ev")
    with testing.capture() as cap:
        assert ev.wait(0.001) is False          # times out
        t = _start(lambda: ev.wait(TIMEOUT))
        testing.wait_until_blocked(ev, 1)
        ev.set()                                # wakes one
        t.join(TIMEOUT)
        assert ev.wait() is True                # already set: does not block
        ev.clear()
    recs = [(x.op, x.ok, x.blocked, dict(x.details)) for x in cap.of(ev)]
    assert recs[0] == ("event.wait", False, True, {"timeout": 0.001})
    assert ("event.set", True, False, {"woken": 1}) in recs
    assert ("event.wait", True, True, {"timeout": float(TIMEOUT)}) in recs
    assert recs[-2:] == [("event.wait", True, False, {"timeout": None}),
                         ("event.clear", True, False, {})]


def test_semaphore_records():
    sem = tracethread.BoundedSemaphore(1, name="sem")
    with testing.capture() as cap:
        assert sem.acquire()
        assert sem.acquire(False) is False
        assert sem.acquire(timeout=0.001) is False
        sem.release()
    recs = [(x.op, x.ok, x.blocked, dict(x.details)) for x in cap.of(sem)]
    assert recs == [
        ("semaphore.acquire", True, False, {"blocking": True, "timeout": None}),
        ("semaphore.acquire", False, False, {"blocking": False, "timeout": None}),
        ("semaphore.acquire", False, True, {"blocking": True, "timeout": 0.001}),
        ("semaphore.release", True, False, {"n": 1}),
    ]
    assert cap.of(sem)[2].timed_out
    assert sem.statistics().value == 1


def test_barrier_records_indexes_breaks_reset_and_abort():
    parties = 3
    b = tracethread.Barrier(parties, name="b")
    with testing.capture() as cap:
        threads = [_start(lambda: b.wait(TIMEOUT)) for _ in range(parties - 1)]
        testing.wait_until(lambda: b.n_waiting == parties - 1)
        b.wait(TIMEOUT)
        for t in threads:
            t.join(TIMEOUT)
        errors = []

        def doomed():
            try:
                b.wait(TIMEOUT)
            except threading.BrokenBarrierError:
                errors.append(True)

        t = _start(doomed)
        testing.wait_until(lambda: b.n_waiting == 1)
        b.abort()
        t.join(TIMEOUT)
        b.reset()
    waits = cap.ops("barrier.wait")
    passed = [w for w in waits if w.ok]
    assert sorted(w.details["index"] for w in passed) == list(range(parties))
    assert all(w.details["parties"] == parties and not w.details["broken"] for w in passed)
    (broken,) = [w for w in waits if not w.ok]
    assert broken.details["broken"] is True and errors == [True]
    assert [x.op for x in cap.ops("barrier.abort", "barrier.reset")] == [
        "barrier.abort", "barrier.reset"]


def test_thread_lifecycle_records_in_order(monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    gate = tracethread.Event()

    def fails():
        gate.wait(TIMEOUT)
        raise ValueError("boom")

    with testing.capture() as cap:
        t = tracethread.Thread(target=fails, name="worker-1")
        t.start()
        joiner_started = []

        def release_when_joining():
            testing.wait_until(lambda: joiner_started)
            gate.set()

        helper = _start(release_when_joining)
        joiner_started.append(True)
        t.join(TIMEOUT)
        helper.join(TIMEOUT)
    recs = [r for r in cap.records if r.primitive is t._tt_info]
    ops = [r.op for r in recs]
    assert ops == ["thread.start", "thread.run.begin", "thread.run.end", "thread.join"]
    start, begin, end, join = recs
    assert start.seq < begin.seq < end.seq < join.seq
    assert begin.thread.name == "worker-1" and start.thread.name == "MainThread"
    assert end.ok is False and end.details["exception"] == "ValueError"
    assert join.ok is True and join.details["timeout"] == float(TIMEOUT)
    seqs = [r.seq for r in cap.records]
    assert seqs == sorted(seqs)


def test_a_conditions_lock_shows_its_waiters_and_infos_stay_out_of_the_gc():
    # A Condition's RLock is built lean (one per Future): its waiting list appears with
    # the first waiter, and statistics show it; a primitive's identity (PrimitiveInfo)
    # cannot be in a reference cycle, so the C build keeps it out of the collector's walks.
    cond = tracethread.Condition()
    assert cond._lock.statistics().waiting == ()
    cond.acquire()
    t = threading.Thread(target=lambda: (cond.acquire(), cond.release()), daemon=True)
    t.start()
    testing.wait_until_blocked(cond._lock, 1, timeout=10)
    assert [w.name for w in cond._lock.statistics().waiting] == [t.name]
    cond.release()
    t.join(10)
    assert cond._lock.statistics().waiting == ()
    from tracethread._core._accel import speedups
    if speedups is not None:
        assert not gc.is_tracked(cond._info) and not gc.is_tracked(cond._lock._info)


def test_with_condition_calls_its_locks_own_enter_and_exit():
    # `with cond:` goes straight to tracethread's Lock/RLock fast paths in C; any other
    # lock, a subclass overriding __enter__/__exit__ included, is called as the stdlib does.
    calls = []

    class Counted(tracethread.Lock):
        __slots__ = ()

        def __enter__(self):
            calls.append("enter")
            return super().__enter__()

        def __exit__(self, *exc):
            calls.append("exit")
            return super().__exit__(*exc)

    for lock in (Counted(), threading.Lock(), tracethread.RLock(), tracethread.Lock()):
        cond = tracethread.Condition(lock)
        with cond as got:
            assert got is True and lock.locked()
            cond.notify()
        assert not lock.locked()
    assert calls == ["enter", "exit"]
    c = tracethread.Condition()
    with pytest.raises(ZeroDivisionError):
        with c:
            1 / 0
    assert not c._lock.locked()


def test_default_name_is_the_creation_site_whether_cached_or_not():
    # The first construction at a line computes the site (Python); later ones find it in
    # the cache (in C with the extension, by code object and instruction): same answer.
    import inspect

    def make():
        return tracethread.Lock(), tracethread.Condition()

    first = make()
    line = inspect.getsourcelines(make)[1] + 1
    for lock, cond in [first, make(), make()]:
        assert lock._info.name.endswith(f"test_recording.py:{line}")
        assert (lock._info.site.line, lock._info.site.function) == (line, "make")
        assert cond._info.name == cond._lock._info.name
        assert cond._info.site.line == line
    other = tracethread.Lock()   # another line, another name
    assert other._info.name != first[0]._info.name


def test_sites_of_code_made_and_dropped_at_runtime_are_their_own():
    # The site cache is keyed by a code object's identity (and instruction): code that
    # died and new code at the same address must not share a site.
    for i in range(50):
        ns = {"tracethread": tracethread}
        exec(compile("def make():\n    return tracethread.Lock()\n", f"<gen-{i}>", "exec"), ns)
        lock = ns["make"]()
        assert (lock._info.site.file, lock._info.site.line) == (f"<gen-{i}>", 2)
        assert lock._info.name == f"<gen-{i}>:2"
        code = weakref.ref(ns["make"].__code__)
        del ns, lock
        gc.collect()
        assert code() is None   # the site cache does not keep recompiled code alive


def test_a_named_primitive_still_records_its_site_and_a_plain_str_name():
    class Label(str):
        def __str__(self):
            return "not this"

    lock = tracethread.Lock(name=Label("db"))
    assert type(lock._info.name) is str and lock._info.name == "db"
    assert lock._info.site.function == sys._getframe().f_code.co_name
    assert tracethread.Condition(name="c")._lock._info.name == "c"


def test_primitive_ids_are_never_reused():
    ids, addresses = [], []
    for _ in range(2):
        locks = [tracethread.Lock() for _ in range(100)]
        ids += [lock._info.id for lock in locks]
        addresses += [id(lock) for lock in locks]
        del locks
        gc.collect()
    assert len(set(ids)) == 200  # while id() of dead objects typically comes back:
    assert len(set(addresses)) <= 200


def test_name_keyword():
    assert tracethread.Event(name="ready").name == "ready"
    assert tracethread.Semaphore(2, name="pool").statistics().name == "pool"
    with pytest.raises(TypeError, match="^name must be a str, not int$"):
        tracethread.Lock(name=123)
    import decimal
    with pytest.raises(TypeError, match="^name must be a str, not Decimal$"):
        tracethread.Condition(name=decimal.Decimal(1))


def test_records_of_a_thread_carry_its_name_even_when_renamed_before_start():
    lock = tracethread.Lock()

    def work():
        with lock:
            pass

    with testing.capture() as cap:
        t = tracethread.Thread(target=work)
        t.name = "renamed"
        t.start()
        t.join(TIMEOUT)
    assert {r.thread.name for r in cap.of(lock)} == {"renamed"}


def test_a_failing_sink_is_contained_reported_once_and_counted(capfd):
    class Broken:
        def handle(self, records):
            raise RuntimeError("sink is broken")

    good = testing.MemorySink()
    broken = Broken()
    before = tracethread.recorder_stats()["sink_errors"]
    tracethread.add_sink(broken)
    tracethread.add_sink(good)
    try:
        lock = tracethread.Lock()
        for _ in range(3):
            with lock:
                pass
            tracethread.flush()
    finally:
        tracethread.remove_sink(broken)
        tracethread.remove_sink(good)
    err = capfd.readouterr().err
    assert err.count("sink Broken failed") == 1
    assert tracethread.recorder_stats()["sink_errors"] - before == 3
    assert len([r for r in good.records if r.primitive is lock._info]) == 6


def test_buffer_overflow_drops_are_counted():
    sink = testing.MemorySink()
    tracethread.add_sink(sink)
    before = tracethread.recorder_stats()["dropped"]
    tracethread.set_buffer_size(100)
    from tracethread._core import stream
    try:
        lock = tracethread.Lock()
        with stream._drain_lock:  # keep the background drainer out of the way
            for _ in range(500):  # 1000 records into a 100-record buffer, no drain between
                lock.acquire()
                lock.release()
        tracethread.flush()
    finally:
        tracethread.set_buffer_size(65_536)
        tracethread.remove_sink(sink)
    got = [r for r in sink.records if r.primitive is lock._info]
    assert 0 < len(got) <= 100
    assert tracethread.recorder_stats()["dropped"] - before >= 1000 - 100 - 1


def test_the_c_fast_paths_are_built_where_a_c_compiler_exists():
    """The extension is optional so installs never fail; but a silent fallback would hide
    a 2x slowdown. Where a compiler and the Python headers exist, it must have built."""
    import shutil
    import sysconfig

    from tracethread._core._accel import speedups
    if os.environ.get("TRACETHREAD_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("pure-Python paths requested (TRACETHREAD_PURE_PYTHON)")
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(cc) is None or not os.path.exists(headers):
        pytest.skip(f"no C compiler ({cc}) or Python headers here: pure-Python paths")
    assert speedups is not None, "tracethread._speedups failed to build or import"
